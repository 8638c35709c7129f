package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey/latchkey/internal/mail"
	"github.com/latchkey/latchkey/internal/sqlstore"
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

// registerWriterMetrics exports what SQLite's batch writer did (sqlstore.WriterStats); on
// PostgreSQL there is none. latchkey_sqlite_writer_busy_seconds_total is the one to watch:
// the writer runs the node's transactions one batch at a time, so a rate near 1 means the
// node writes as fast as it can, and its requests that write wait in line.
func registerWriterMetrics(reg prometheus.Registerer, db *sqlstore.DB) {
	if _, ok := db.WriterStats(); !ok {
		return
	}
	stat := func(f func(sqlstore.WriterStats) float64) func() float64 {
		return func() float64 { w, _ := db.WriterStats(); return f(w) }
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "latchkey_sqlite_writer_busy_seconds_total",
			Help: "Time SQLite's batch writer spent running batches of transactions (one at a time: a rate near 1 means the node's writes wait for it).",
		}, stat(func(w sqlstore.WriterStats) float64 { return w.Busy.Seconds() })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "latchkey_sqlite_writer_batches_total",
			Help: "Transactions SQLite's batch writer committed or rolled back, each holding the transactions and reads waiting at its start.",
		}, stat(func(w sqlstore.WriterStats) float64 { return float64(w.Batches) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "latchkey_sqlite_writer_writes_total",
			Help: "Transactions of requests run by SQLite's batch writer.",
		}, stat(func(w sqlstore.WriterStats) float64 { return float64(w.Writes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "latchkey_sqlite_writer_reads_total",
			Help: "Reads run by SQLite's batch writer, on its connection, while it was busy.",
		}, stat(func(w sqlstore.WriterStats) float64 { return float64(w.Reads) })),
	)
}

// newAuditEventsMetric is latchkey_audit_events_total: the audit entries this node
// committed, by action and outcome, so that an alert can watch what the trail records
// (failed sign-ins by factor, lockouts, replayed codes, denied and fraudulent pushes,
// factor changes, support resets) without querying it. Both labels take the trail's fixed
// vocabularies (latchkey.Action*, latchkey.Outcome*), never input.
func newAuditEventsMetric() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_audit_events_total",
		Help: "Audit trail entries this node committed, by action (login.totp, push.fraud, lockout, ...) and outcome (success, failure, denied, ...).",
	}, []string{"action", "outcome"})
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
