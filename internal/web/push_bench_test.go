package web_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/latchkey/latchkey"
	"github.com/latchkey/latchkey/internal/deviceproto"
)

// BenchmarkPushRoundTrip measures one push sign-in over loopback: the browser's password step
// is done beforehand; each iteration starts a push, the device receives it through a long poll
// and answers with the number, and the browser's long poll is released signed in.
func BenchmarkPushRoundTrip(b *testing.B) {
	f := newFixture(b, "")
	_, d := f.activated(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		br := f.client(b)
		if r := br.post("/api/v1/login", map[string]string{"username": "alice", "password": pw}); r.code != 200 {
			b.Fatalf("login: %d %s", r.code, r.raw)
		}
		b.StartTimer()
		r := br.post("/api/v1/login/push", nil)
		if r.code != 200 {
			b.Fatalf("push: %d %s", r.code, r.raw)
		}
		id, number := r.body["challenge_id"].(string), r.body["number"].(string)
		done := make(chan response, 1)
		go func() { done <- br.do("GET", "/api/v1/login/push/"+id+"?wait=10s", "", "") }()
		lp := d.call("GET", deviceproto.PathChallenges+"?wait=10s", nil)
		if lp.code != 200 || len(lp.body["challenges"].([]any)) != 1 {
			b.Fatalf("device poll: %d %s", lp.code, lp.raw)
		}
		if a := d.answer(id, "approve", number); a.body["state"] != "approved" {
			b.Fatalf("answer: %s", a.raw)
		}
		if st := <-done; st.body["state"] != "approved" {
			b.Fatalf("browser: %s", st.raw)
		}
	}
}

// BenchmarkConnectedDevices opens b.N device event streams to one server, one per device of
// its own user (a device holds 3 at most, push.WaitsPerDevice), and reports the server
// process's heap per open connection (client and server share the process, so the figure is
// an upper bound).
func BenchmarkConnectedDevices(b *testing.B) {
	f := newFixture(b, "")
	n := max(b.N, 100)
	devs := make([]*testDevice, n)
	for i := range devs {
		d := f.newDevice(b)
		u := &latchkey.User{Username: fmt.Sprintf("device-user-%d", i), Email: fmt.Sprintf("device-user-%d@example.com", i), Role: latchkey.RoleUser, PasswordHash: "unused"}
		u.UsernameKey = u.Username
		if err := f.db.CreateUser(context.Background(), u); err != nil {
			b.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&d.key.PublicKey)
		if err != nil {
			b.Fatal(err)
		}
		dev := &latchkey.Device{UserID: u.ID, Name: "Phone", Platform: "linux", PublicKey: der, State: latchkey.DeviceActive}
		if err := f.db.CreateDevice(context.Background(), dev, &latchkey.TOTPCredential{Name: "Phone", Secret: make([]byte, 20)}); err != nil {
			b.Fatal(err)
		}
		d.id = dev.ID
		devs[i] = d
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < n; i++ {
		d := devs[i]
		req := d.request("GET", deviceproto.PathEvents, nil, d.id)
		resp, err := f.srv.Client().Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("stream %d: %v %v", i, err, resp)
		}
		_, _ = bufio.NewReader(resp.Body).Peek(0)
		b.Cleanup(func() { resp.Body.Close() })
	}
	b.StopTimer()
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(n)/1024, "KiB-heap/conn")
	b.ReportMetric(float64(runtime.NumGoroutine())/float64(n), "goroutines/conn")
}
