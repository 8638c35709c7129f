package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The batch writer's share of the time. On SQLite one goroutine of the server, the batch
// writer, runs every transaction one batch at a time (internal/sqlstore/batch.go), so a
// scenario that writes cannot go faster than it: a share near 100% says the writer is what
// bounds the rate, and time it spends off a processor (waiting for one, in system calls)
// counts in it. The server exports it on /metrics (latchkey_sqlite_writer_busy_seconds_total);
// PostgreSQL has no batch writer, and the share is then not known.

// writerMetric is the counter read.
const writerMetric = "latchkey_sqlite_writer_busy_seconds_total"

// writerSnap is the writer's busy time summed over the nodes, in seconds, at a moment.
type writerSnap struct {
	at   time.Time
	busy float64
	ok   bool // false when a node did not export it (PostgreSQL) or could not be read
}

// readWriter reads the writer's busy time of every node.
func readWriter(ctx context.Context, nodes urls) writerSnap {
	s := writerSnap{at: time.Now(), ok: len(nodes) > 0}
	for _, base := range nodes {
		v, ok := scrapeCounter(ctx, base, writerMetric)
		s.busy += v
		s.ok = s.ok && ok
	}
	return s
}

// writerBusy is the share of the time between a and b the writer was busy (over several
// nodes, their sum: each has a writer of its own), or -1 when not known.
func writerBusy(a, b writerSnap) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if !a.ok || !b.ok || wall <= 0 {
		return -1
	}
	return max(0, (b.busy-a.busy)/wall)
}

// metricsClient reads /metrics on a connection of its own, so a scrape never waits behind a
// scenario's requests.
var metricsClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// scrapeCounter reads the unlabelled metric name from base's /metrics.
func scrapeCounter(ctx context.Context, base, name string) (float64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	return parseCounter(bufio.NewScanner(resp.Body), name)
}

// parseCounter finds the line "name value" of a Prometheus text exposition.
func parseCounter(sc *bufio.Scanner, name string) (float64, bool) {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}
