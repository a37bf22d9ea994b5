package integration

import (
	"fmt"
	"sort"
	"sync"
)

// history records what a chaos test's clients were told and saw, and checks
// it against the final log (a Jepsen-style checker for Kafka's guarantees):
//   - lost: an acknowledged record missing from the final log, or at
//     another offset than it was acknowledged at;
//   - duplicated: a value stored at two offsets (idempotence failed);
//   - reordered: within a partition, one producer's acknowledged values out
//     of the order it sent them in;
//   - phantom reads: a consumer saw a record at an offset where the final
//     log holds another (it read past the high watermark, and the record
//     was truncated away later);
//   - going backwards: a consumer's offsets in a partition not increasing.
type history struct {
	mu       sync.Mutex
	acked    map[int32]map[int64]string // partition → offset → value
	maxAcked map[int32]int64
	seen     map[int32]map[int64]string
	lastSeen map[int32]int64
	errs     []string
}

func newHistory() *history {
	return &history{
		acked:    map[int32]map[int64]string{},
		maxAcked: map[int32]int64{},
		seen:     map[int32]map[int64]string{},
		lastSeen: map[int32]int64{},
	}
}

func (h *history) failf(format string, args ...any) {
	if len(h.errs) < 20 {
		h.errs = append(h.errs, fmt.Sprintf(format, args...))
	}
}

// ack records that value was acknowledged at partition/offset.
func (h *history) ack(partition int32, offset int64, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.acked[partition] == nil {
		h.acked[partition] = map[int64]string{}
	}
	if prev, ok := h.acked[partition][offset]; ok && prev != value {
		h.failf("partition %d offset %d acknowledged twice: %q and %q", partition, offset, prev, value)
	}
	h.acked[partition][offset] = value
	if last, ok := h.maxAcked[partition]; !ok || offset > last {
		h.maxAcked[partition] = offset
	}
}

// lastAcked is the highest offset acknowledged in partition, -1 if none.
func (h *history) lastAcked(partition int32) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if last, ok := h.maxAcked[partition]; ok {
		return last
	}
	return -1
}

// observe records that a consumer read value at partition/offset.
func (h *history) observe(partition int32, offset int64, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if last, ok := h.lastSeen[partition]; ok && offset <= last {
		h.failf("consumer went backwards in partition %d: offset %d after %d", partition, offset, last)
	}
	h.lastSeen[partition] = offset
	if h.seen[partition] == nil {
		h.seen[partition] = map[int64]string{}
	}
	h.seen[partition][offset] = value
}

// resetConsumer forgets the consumer's positions (a new consumer starts).
func (h *history) resetConsumer() {
	h.mu.Lock()
	h.lastSeen = map[int32]int64{}
	h.mu.Unlock()
}

// check compares the history with the final log (partition → offset →
// value) and returns the violations found; seqOf gives a value's place in
// the order the producer sent them.
func (h *history) check(final map[int32]map[int64]string, seqOf func(string) int) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	errs := append([]string(nil), h.errs...)
	fail := func(format string, args ...any) {
		if len(errs) < 40 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	for p, offs := range h.acked {
		for off, v := range offs {
			if got, ok := final[p][off]; !ok {
				fail("lost: %q acknowledged at %d/%d is not in the log", v, p, off)
			} else if got != v {
				fail("lost: %q acknowledged at %d/%d, the log has %q there", v, p, off, got)
			}
		}
	}
	for p, offs := range h.seen {
		for off, v := range offs {
			if got, ok := final[p][off]; !ok || got != v {
				fail("phantom read: consumer saw %q at %d/%d, the log has %q", v, p, off, got)
			}
		}
	}
	where := map[string]string{}
	for p, offs := range final {
		sorted := make([]int64, 0, len(offs))
		for off := range offs {
			sorted = append(sorted, off)
		}
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		last := -1
		for _, off := range sorted {
			v := offs[off]
			if prev, dup := where[v]; dup {
				fail("duplicated: %q at %s and %d/%d", v, prev, p, off)
			}
			where[v] = fmt.Sprintf("%d/%d", p, off)
			if seq := seqOf(v); seq <= last {
				fail("reordered: in partition %d %q (at %d) follows a later record", p, v, off)
			} else {
				last = seq
			}
		}
	}
	return errs
}
