package main

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

// TestParseCounter: the writer's counter is found among other metrics, labelled ones and
// comments are skipped, and a missing one is not read as zero.
func TestParseCounter(t *testing.T) {
	text := `# HELP latchkey_sqlite_writer_busy_seconds_total Time …
# TYPE latchkey_sqlite_writer_busy_seconds_total counter
latchkey_sqlite_writer_busy_seconds_total_other 9
latchkey_http_requests_total{code="200"} 5
latchkey_sqlite_writer_busy_seconds_total 12.5
`
	if v, ok := parseCounter(bufio.NewScanner(strings.NewReader(text)), writerMetric); !ok || v != 12.5 {
		t.Errorf("parseCounter = %v, %v; want 12.5, true", v, ok)
	}
	if _, ok := parseCounter(bufio.NewScanner(strings.NewReader("go_goroutines 12\n")), writerMetric); ok {
		t.Error("a missing counter was read")
	}
}

// TestWriterBusy: the share is the busy time's growth over the wall time, and unknown (-1)
// when either reading is.
func TestWriterBusy(t *testing.T) {
	at := time.Now()
	a := writerSnap{at: at, busy: 10, ok: true}
	if got := writerBusy(a, writerSnap{at: at.Add(2 * time.Second), busy: 11.5, ok: true}); got != 0.75 {
		t.Errorf("writerBusy = %v, want 0.75", got)
	}
	if got := writerBusy(a, writerSnap{at: at.Add(time.Second), ok: false}); got != -1 {
		t.Errorf("writerBusy with an unknown reading = %v, want -1", got)
	}
}
