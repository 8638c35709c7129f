package push

import (
	"errors"
	"testing"
)

func displaced(w *DeviceWait) bool {
	select {
	case <-w.Displaced:
		return true
	default:
		return false
	}
}

func mustWait(t *testing.T, h *Hub, user, device int64) *DeviceWait {
	t.Helper()
	w, err := h.WaitDevice(user, device)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestDeviceWaitsPerDevice: a device holds at most WaitsPerDevice waits; a new one displaces
// the oldest, which no longer counts against the device, and a closed one frees its place.
func TestDeviceWaitsPerDevice(t *testing.T) {
	h := NewHub()
	var ws []*DeviceWait
	for range WaitsPerDevice {
		ws = append(ws, mustWait(t, h, 1, 10))
	}
	for i, w := range ws {
		if displaced(w) {
			t.Fatalf("wait %d displaced within the limit", i)
		}
	}
	next := mustWait(t, h, 1, 10)
	if !displaced(ws[0]) {
		t.Fatal("the oldest wait was not displaced by the one past the limit")
	}
	for i, w := range append(ws[1:], next) {
		if displaced(w) {
			t.Fatalf("wait %d displaced, not only the oldest", i+1)
		}
	}
	// Signals still reach the displaced wait until it is closed, and the others.
	h.NotifyDevice(10)
	for i, w := range append(ws, next) {
		select {
		case <-w.C:
		default:
			t.Fatalf("wait %d missed the device's news", i)
		}
	}
	if n := h.Waits(); n != WaitsPerDevice {
		t.Fatalf("Waits() = %d with one wait displaced, want %d", n, WaitsPerDevice)
	}
	ws[0].Close()
	ws[0].Close() // twice is harmless
	if n := h.Waits(); n != WaitsPerDevice {
		t.Fatalf("Waits() = %d, want %d", n, WaitsPerDevice)
	}
	// A closed wait frees its place: the next one displaces nobody.
	ws[1].Close()
	another := mustWait(t, h, 1, 10)
	for i, w := range []*DeviceWait{ws[2], next, another} {
		if displaced(w) {
			t.Fatalf("wait %d displaced although a place was free", i)
		}
	}
	// Another device of the same user has places of its own.
	other := mustWait(t, h, 1, 11)
	if displaced(other) || displaced(ws[2]) {
		t.Fatal("a wait of another device displaced one")
	}
	for _, w := range []*DeviceWait{ws[2], next, another, other} {
		w.Close()
	}
	if n := h.Waits(); n != 0 || len(h.waitsByDevice) != 0 || len(h.waitsByUser) != 0 || len(h.devices) != 0 {
		t.Fatalf("after every wait closed: %d waits, %d devices, %d users, %d subscriptions", n, len(h.waitsByDevice), len(h.waitsByUser), len(h.devices))
	}
}

// TestDeviceWaitsPerUser: a user's devices together hold at most WaitsPerUser waits; past
// that the user's oldest is displaced, whichever device it belongs to, and other users'
// waits are untouched.
func TestDeviceWaitsPerUser(t *testing.T) {
	h := NewHub()
	bob := mustWait(t, h, 2, 99)
	var ws []*DeviceWait
	for i := range WaitsPerUser {
		ws = append(ws, mustWait(t, h, 1, int64(100+i))) // one wait on each of many devices
	}
	for i, w := range ws {
		if displaced(w) {
			t.Fatalf("wait %d displaced within the user's limit", i)
		}
	}
	mustWait(t, h, 1, 500)
	if !displaced(ws[0]) || displaced(ws[1]) || displaced(bob) {
		t.Fatalf("past the user's limit: oldest displaced %v, second %v, another user's %v; want true, false, false", displaced(ws[0]), displaced(ws[1]), displaced(bob))
	}
}

// TestDeviceWaitsNodeLimit: past the node's limit a wait is refused with ErrBusy, and a
// closed one frees a place; displaced waits count until they close.
func TestDeviceWaitsNodeLimit(t *testing.T) {
	h := NewHub()
	h.LimitWaits(4)
	var ws []*DeviceWait
	for i := range 4 {
		ws = append(ws, mustWait(t, h, int64(i), int64(i)))
	}
	if _, err := h.WaitDevice(9, 9); !errors.Is(err, ErrBusy) {
		t.Fatalf("a wait past the node's limit: %v, want ErrBusy", err)
	}
	ws[0].Close()
	w := mustWait(t, h, 9, 9)
	w.Close()
	for _, w := range ws[1:] {
		w.Close()
	}
	// A displaced wait leaves the node's count at once: one device's flood of waits, each
	// displacing the one before, cannot fill the node's limit.
	var same []*DeviceWait
	for range 40 {
		same = append(same, mustWait(t, h, 1, 1))
	}
	if n := h.Waits(); n != WaitsPerDevice {
		t.Fatalf("Waits() = %d after 40 waits of one device, want %d", n, WaitsPerDevice)
	}
	for _, w := range same {
		w.Close()
	}
	if n := h.Waits(); n != 0 {
		t.Fatalf("Waits() = %d after every wait closed, want 0", n)
	}
}

// TestDeviceWaitsEndGone: a new wait of a device ends the older ones whose client is gone
// (SetAlive), at once and out of the node's count, and leaves the live ones and other
// devices' waits alone.
func TestDeviceWaitsEndGone(t *testing.T) {
	h := NewHub()
	gone := mustWait(t, h, 1, 10)
	live := mustWait(t, h, 1, 10)
	other := mustWait(t, h, 1, 11)
	gone.SetAlive(func() bool { return false })
	live.SetAlive(func() bool { return true })
	other.SetAlive(func() bool { return false }) // another device: not checked by device 10's wait
	if displaced(gone) || h.Waits() != 3 {
		t.Fatalf("a gone client's wait ended before its device waited again (waits %d)", h.Waits())
	}
	next := mustWait(t, h, 1, 10)
	if !displaced(gone) {
		t.Fatal("the wait whose client is gone was not ended by its device's new wait")
	}
	if displaced(live) || displaced(other) || displaced(next) {
		t.Fatal("a live wait, or another device's, was ended")
	}
	if n := h.Waits(); n != 3 {
		t.Fatalf("node holds %d waits, want 3 (the gone one left the count)", n)
	}
	gone.Close()
	if n := h.Waits(); n != 3 {
		t.Fatalf("closing the ended wait changed the count to %d", n)
	}
}
