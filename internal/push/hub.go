package push

import "sync"

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
}

// NewHub returns an empty hub. Relays, if any, are told of every notification too.
func NewHub(relays ...Notifier) *Hub {
	return &Hub{devices: map[int64]map[chan struct{}]struct{}{}, challenges: map[string]map[chan struct{}]struct{}{}, relays: relays}
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
