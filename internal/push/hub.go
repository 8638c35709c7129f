package push

import (
	"errors"
	"sync"
)

// Notifier wakes up whoever waits for news of a device (a new challenge for it) or of a
// challenge (it was answered). The Hub does it within one process; a relay to APNs or FCM, or
// PostgreSQL LISTEN/NOTIFY between nodes, implements the same interface. A notification
// carries no content: the woken party reads the database, so a lost or forged wake-up can do
// no harm beyond a wasted read.
type Notifier interface {
	NotifyDevice(deviceID int64)
	NotifyChallenge(challengeID string)
}

// Hub is the in-process Notifier with subscriptions. Signals coalesce: a subscriber that is
// busy when several arrive sees one.
type Hub struct {
	mu         sync.Mutex
	devices    map[int64]map[chan struct{}]struct{}
	challenges map[string]map[chan struct{}]struct{}
	relays     []Notifier

	// The device waits (event streams and long polls) by device and by user, oldest first,
	// and how many there are; see WaitDevice.
	waitsByDevice map[int64][]*DeviceWait
	waitsByUser   map[int64][]*DeviceWait
	waits         int
	maxWaits      int
}

// NewHub returns an empty hub. Relays, if any, are told of every notification too.
func NewHub(relays ...Notifier) *Hub {
	return &Hub{
		devices: map[int64]map[chan struct{}]struct{}{}, challenges: map[string]map[chan struct{}]struct{}{}, relays: relays,
		waitsByDevice: map[int64][]*DeviceWait{}, waitsByUser: map[int64][]*DeviceWait{},
	}
}

// How many device waits one device and one user may hold at once. A Latch app holds one
// event stream, and a long poll now and then (latch approve, or a fallback); a user has a
// phone and perhaps a desktop. Past these the oldest wait is displaced: the newest is the
// one a client that reconnected is using, and a client whose wait was displaced by mistake
// reconnects.
const (
	WaitsPerDevice = 3
	WaitsPerUser   = 8
)

// ErrBusy is WaitDevice's refusal when the node holds its limit of device waits.
var ErrBusy = errors.New("push: this node holds as many device connections as it may")

// LimitWaits sets how many device waits the node holds at most (0: no limit). A wait costs a
// connection, so the limit keeps descriptors for everything else (docs/deploy.md).
func (h *Hub) LimitWaits(n int) {
	h.mu.Lock()
	h.maxWaits = n
	h.mu.Unlock()
}

// DeviceWait is a subscription to a device's news held for one event stream or long poll. C
// is signalled when the device has news; Displaced is closed when a newer wait of the same
// device or user took its place, and the holder must end its stream then.
type DeviceWait struct {
	C         <-chan struct{}
	Displaced <-chan struct{}

	h              *Hub
	user, device   int64
	displaced      chan struct{}
	unsubscribe    func()
	listed, closed bool        // in the hub's lists; Close was called (guarded by h.mu)
	alive          func() bool // SetAlive (guarded by h.mu)
}

// SetAlive gives the wait a check of its client. A later wait of the same device calls it
// on the older ones and ends those whose client is gone: a stream whose connection the client
// closed (a phone that moved networks, a proxy that restarted) would otherwise hold its place
// until a write to it failed, and its device's new stream would count twice meanwhile.
func (w *DeviceWait) SetAlive(f func() bool) {
	w.h.mu.Lock()
	w.alive = f
	w.h.mu.Unlock()
}

// endGone ends the device's waits whose clients are gone (SetAlive). The checks run outside
// h.mu: they may make a system call each.
func (h *Hub) endGone(deviceID int64) {
	type check struct {
		w     *DeviceWait
		alive func() bool
	}
	var buf [WaitsPerDevice + 1]check
	checks := buf[:0]
	h.mu.Lock()
	for _, w := range h.waitsByDevice[deviceID] {
		if w.alive != nil && len(checks) < len(buf) {
			checks = append(checks, check{w, w.alive})
		}
	}
	h.mu.Unlock()
	for _, c := range checks {
		if c.alive() {
			continue
		}
		h.mu.Lock()
		if c.w.listed && !c.w.closed {
			h.displace(c.w)
		}
		h.mu.Unlock()
	}
}

// WaitDevice opens a wait for news of the device of the user. At most WaitsPerDevice waits
// of one device and WaitsPerUser of one user are open: a new one displaces the oldest. When
// the node holds its limit (LimitWaits) it answers ErrBusy. Close ends the wait.
func (h *Hub) WaitDevice(userID, deviceID int64) (*DeviceWait, error) {
	h.endGone(deviceID)
	h.mu.Lock()
	if h.maxWaits > 0 && h.waits >= h.maxWaits {
		h.mu.Unlock()
		return nil, ErrBusy
	}
	h.waits++
	w := &DeviceWait{h: h, user: userID, device: deviceID, displaced: make(chan struct{}), listed: true}
	w.Displaced = w.displaced
	h.waitsByDevice[deviceID] = append(h.waitsByDevice[deviceID], w)
	h.waitsByUser[userID] = append(h.waitsByUser[userID], w)
	if l := h.waitsByDevice[deviceID]; len(l) > WaitsPerDevice {
		h.displace(l[0])
	}
	if l := h.waitsByUser[userID]; len(l) > WaitsPerUser {
		h.displace(l[0])
	}
	h.mu.Unlock()
	w.C, w.unsubscribe = subscribe(h, h.devices, deviceID)
	return w, nil
}

// displace tells the wait to end and takes it out of the lists and the node's count: its
// holder closes it at once (before any database read), and a flood of one device's waits
// must not fill the node's limit with waits on their way out. h.mu is held.
func (h *Hub) displace(w *DeviceWait) {
	close(w.displaced)
	h.unlist(w)
	h.waits--
}

// unlist takes the wait out of the per-device and per-user lists. h.mu is held.
func (h *Hub) unlist(w *DeviceWait) {
	if !w.listed {
		return
	}
	w.listed = false
	h.waitsByDevice[w.device] = without(h.waitsByDevice[w.device], w)
	if len(h.waitsByDevice[w.device]) == 0 {
		delete(h.waitsByDevice, w.device)
	}
	h.waitsByUser[w.user] = without(h.waitsByUser[w.user], w)
	if len(h.waitsByUser[w.user]) == 0 {
		delete(h.waitsByUser, w.user)
	}
}

func without(l []*DeviceWait, w *DeviceWait) []*DeviceWait {
	for i, x := range l {
		if x == w {
			return append(l[:i:i], l[i+1:]...)
		}
	}
	return l
}

// Close ends the wait. It may be called more than once.
func (w *DeviceWait) Close() {
	h := w.h
	h.mu.Lock()
	if w.closed {
		h.mu.Unlock()
		return
	}
	w.closed = true
	if w.listed { // a displaced wait left the count already
		h.unlist(w)
		h.waits--
	}
	h.mu.Unlock()
	w.unsubscribe()
}

// Waits returns how many device waits the node holds (for metrics and tests).
func (h *Hub) Waits() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.waits
}

func subscribe[K comparable](h *Hub, m map[K]map[chan struct{}]struct{}, k K) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	set := m[k]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		m[k] = set
	}
	set[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(set, ch)
		if len(set) == 0 && m[k] != nil && len(m[k]) == 0 {
			delete(m, k)
		}
		h.mu.Unlock()
	}
}

func signal[K comparable](h *Hub, m map[K]map[chan struct{}]struct{}, k K) {
	h.mu.Lock()
	for ch := range m[k] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	h.mu.Unlock()
}

// SubscribeDevice returns a channel signalled when the device has news, and a function that
// ends the subscription.
func (h *Hub) SubscribeDevice(id int64) (<-chan struct{}, func()) { return subscribe(h, h.devices, id) }

// SubscribeChallenge returns a channel signalled when the challenge changes, and a function
// that ends the subscription.
func (h *Hub) SubscribeChallenge(id string) (<-chan struct{}, func()) {
	return subscribe(h, h.challenges, id)
}

// NotifyDevice signals the device's subscribers and the relays.
func (h *Hub) NotifyDevice(id int64) {
	signal(h, h.devices, id)
	for _, r := range h.relays {
		r.NotifyDevice(id)
	}
}

// NotifyChallenge signals the challenge's subscribers and the relays.
func (h *Hub) NotifyChallenge(id string) {
	signal(h, h.challenges, id)
	for _, r := range h.relays {
		r.NotifyChallenge(id)
	}
}

// SignalDevice signals the device's subscribers in this process only, not the relays: for a
// relay delivering a notification that came from another node, which must not travel back.
func (h *Hub) SignalDevice(id int64) { signal(h, h.devices, id) }

// SignalChallenge signals the challenge's subscribers in this process only, not the relays.
func (h *Hub) SignalChallenge(id string) { signal(h, h.challenges, id) }

// SignalAll signals every subscriber in this process, not the relays: for a relay that may
// have missed notifications (its connection was down), so that every waiter re-reads the
// database now instead of at its next periodic check.
func (h *Hub) SignalAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.devices {
		wake(set)
	}
	for _, set := range h.challenges {
		wake(set)
	}
}

func wake(set map[chan struct{}]struct{}) {
	for ch := range set {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Subscribers returns how many device subscriptions are open (for metrics and tests).
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.devices {
		n += len(s)
	}
	return n
}
