package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey/latchkey/internal/mail"
)

// mailRetention is how long the record of a message sent or given up on (recipient,
// subject, error; never the body) is kept for troubleshooting.
const mailRetention = 7 * 24 * time.Hour

// registerMailMetrics exports the outbox counts. They come from the worker's last round,
// so a scrape never touches the database.
func registerMailMetrics(reg prometheus.Registerer, q *mail.Queue) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "latchkey_mail_outbox_pending",
			Help: "Messages in the mail outbox waiting for a first or further delivery attempt (all nodes).",
		}, func() float64 { p, _ := q.Stats(); return float64(p) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "latchkey_mail_outbox_failed",
			Help: "Messages given up on after three days of failed delivery attempts, kept for seven days (all nodes).",
		}, func() float64 { _, f := q.Stats(); return float64(f) }),
	)
}

// runMailQueue starts the outbox worker and returns a function that stops it and waits for
// the message in progress. The worker outlives ctx on purpose: runServe stops it after the
// HTTP server has shut down, so that it does not cut an attempt short while requests still
// finish. Whatever is still queued then waits in the database for the next start (or is sent
// by another node).
func (a *app) runMailQueue(ctx context.Context) (stop func()) {
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); _ = a.mail.Run(mctx) }()
	return func() { cancel(); <-done }
}
