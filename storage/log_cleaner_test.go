package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func kv(key, value string, ts int64) testRec {
	return testRec{key: []byte(key), value: []byte(value), ts: ts}
}

func tombstone(key string, ts int64) testRec { return testRec{key: []byte(key), ts: ts} }

// compactConfig is a compacted topic config that cleans at any dirty ratio, with
// small segments.
func compactConfig() LogConfig {
	c := testLogConfig()
	c.CleanupPolicy = "compact"
	c.MinCleanableDirtyRatio = 0
	c.SegmentBytes = 2048
	c.IndexIntervalBytes = 256
	return c
}

// newTestCleaner is a LogCleaner over l alone, without goroutines: tests run its
// passes with cleanOnce.
func newTestCleaner(t testing.TB, l *Log, now func() time.Time, dedupeBufferSize int64) *LogCleaner {
	t.Helper()
	cps := &cleanerCheckpoints{path: filepath.Join(l.dir, "..", cleanerCheckpointFile), offsets: map[topicPartition]int64{}}
	if now == nil {
		now = time.Now
	}
	return newLogCleaner(CleanerConfig{Threads: 1, DedupeBufferSize: dedupeBufferSize, IOBufferSize: 4096, Backoff: time.Hour},
		func() []*Log { return []*Log{l} }, cps, discardLogger, now)
}

// cleanOnce runs one pass of a cleaner goroutine and fails the test on an error.
func cleanOnce(t testing.TB, c *LogCleaner) bool {
	t.Helper()
	l, ltc, ok := c.grabFilthiestCompactedLog()
	if !ok {
		return false
	}
	defer c.doneCleaning(l)
	cleaned, err := c.clean(context.Background(), l, ltc)
	if err != nil {
		t.Fatalf("clean: %v", err)
	}
	return cleaned
}

// rollNow closes the active segment so everything written so far is cleanable.
func rollNow(t testing.TB, l *Log) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.roll(); err != nil {
		t.Fatal(err)
	}
}

// logBatches reads every batch of every segment file, checking each CRC.
func logBatches(t testing.TB, l *Log) []BatchHeader {
	t.Helper()
	var out []BatchHeader
	for _, seg := range *l.segments.Load() {
		b := readFile(t, seg.log.path)
		for len(b) > 0 {
			h, err := ParseBatchHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyBatchCRC(b[:h.Size()]); err != nil {
				t.Fatalf("batch at offset %d: %v", h.BaseOffset, err)
			}
			out = append(out, h)
			b = b[h.Size():]
		}
	}
	return out
}

// allRecords reads the whole log from the log start with Read, as a consumer does,
// tolerating compaction gaps.
func allRecords(t testing.TB, l *Log) []Record {
	t.Helper()
	var out []Record
	for off := l.LogStartOffset(); off < l.HighWatermark(); {
		info, err := l.Read(off, 1<<20, l.HighWatermark(), true)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		b, err := info.Records.Bytes()
		info.Records.Release()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			break // the rest was cleaned away
		}
		for len(b) > 0 {
			h, _ := ParseBatchHeader(b)
			if err := VerifyBatchCRC(b[:h.Size()]); err != nil {
				t.Fatal(err)
			}
			if !h.IsControl() {
				err := Records(b[:h.Size()], func(r Record) bool {
					if r.Offset >= off {
						out = append(out, cloneRecord(r))
					}
					return true
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			off = h.LastOffset() + 1
			b = b[h.Size():]
		}
	}
	return out
}

// model is last-write-wins: key -> (offset, value) of its latest record.
type modelEntry struct {
	offset int64
	value  []byte
}

func checkCompacted(t testing.TB, l *Log, model map[string]modelEntry) {
	t.Helper()
	got := allRecords(t, l)
	seen := map[string]bool{}
	for _, r := range got {
		k := string(r.Key)
		if seen[k] {
			t.Fatalf("key %q appears twice after the clean (offset %d)", k, r.Offset)
		}
		seen[k] = true
		want, ok := model[k]
		if !ok || want.offset != r.Offset || !bytes.Equal(want.value, r.Value) {
			t.Fatalf("key %q: offset %d value %q, want offset %d value %q", k, r.Offset, r.Value, want.offset, want.value)
		}
	}
	for k, e := range model {
		if !seen[k] && e.value != nil {
			t.Fatalf("key %q (offset %d) lost", k, e.offset)
		}
	}
}

func TestCleanerKeepsLatestPerKey(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), compactConfig(), false, clock)
	model := map[string]modelEntry{}
	for i := range 300 {
		k, v := fmt.Sprintf("k%02d", i%23), fmt.Sprintf("v%d", i)
		info := appendOK(t, l, newBatch(t, batchOpts{}, kv(k, v, clock.ms())), 0)
		model[k] = modelEntry{info.FirstOffset, []byte(v)}
	}
	rollNow(t, l)
	leo, size := l.LogEndOffset(), l.Size()
	c := newTestCleaner(t, l, clock.Now, 1<<20)
	if !cleanOnce(t, c) {
		t.Fatal("nothing cleaned")
	}
	checkCompacted(t, l, model)
	if l.LogEndOffset() != leo || l.LogStartOffset() != 0 {
		t.Fatalf("offsets moved: LEO %d (was %d), log start %d", l.LogEndOffset(), leo, l.LogStartOffset())
	}
	if l.Size() >= size/5 {
		t.Fatalf("log barely shrank: %d -> %d bytes", size, l.Size())
	}
	if cp, _ := c.checkpoints.get(l); cp != leo {
		t.Fatalf("checkpoint %d, want %d", cp, leo)
	}
	// A second pass finds nothing dirty.
	if cleanOnce(t, c) {
		t.Fatal("cleaned a clean log")
	}
	// Reopened (the cleaner checkpoint tells recovery about the gaps), the log is
	// the same.
	before := allRecords(t, l)
	l.close(true)
	l2, err := openLog(logParams{dir: l.dir, topic: "t", config: compactConfig(), cleanShutdown: false, now: clock.Now, logger: discardLogger, cleanerCheckpoint: leo})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.close(false)
	if l2.LogEndOffset() != leo {
		t.Fatalf("reopened LEO %d, want %d", l2.LogEndOffset(), leo)
	}
	if after := allRecords(t, l2); len(after) != len(before) {
		t.Fatalf("reopened log has %d records, had %d", len(after), len(before))
	}
}

func TestCleanerNeverTouchesActiveSegment(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), compactConfig(), false, nil)
	for i := range 100 {
		appendOK(t, l, newBatch(t, batchOpts{}, kv("same", fmt.Sprint(i), 1)), 0)
	}
	segs := *l.segments.Load()
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	active := segs[len(segs)-1]
	activeBytes := readFile(t, active.log.path)
	c := newTestCleaner(t, l, nil, 1<<20)
	if !cleanOnce(t, c) {
		t.Fatal("nothing cleaned")
	}
	if got := readFile(t, l.activeSegment().log.path); l.activeSegment() != active || !bytes.Equal(got, activeBytes) {
		t.Fatal("the active segment changed")
	}
	// Below the active segment only the latest record the map saw is left: the
	// map covers the cleanable part only.
	var kept []int64
	for _, h := range logBatches(t, l) {
		if h.BaseOffset < active.baseOffset {
			kept = append(kept, h.BaseOffset)
		}
	}
	if len(kept) != 1 || kept[0] != active.baseOffset-1 {
		t.Fatalf("below the active segment (%d) batches %v are left, want [%d]", active.baseOffset, kept, active.baseOffset-1)
	}
}

func TestCleanerStopsAtLastStableOffset(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), compactConfig(), false, nil)
	for i := range 60 {
		appendOK(t, l, newBatch(t, batchOpts{}, kv("k", fmt.Sprint(i), 1)), 0)
	}
	rollNow(t, l)
	l.UpdateHighWatermark(10) // a follower's view: committed up to 10 only
	c := newTestCleaner(t, l, nil, 1<<20)
	cleanOnce(t, c)
	if cp, _ := c.checkpoints.get(l); cp > 10 {
		t.Fatalf("checkpoint %d past the high watermark 10", cp)
	}
	var offsets []int64
	for _, seg := range *l.segments.Load() {
		b := readFile(t, seg.log.path)
		for len(b) > 0 {
			h, _ := ParseBatchHeader(b)
			offsets = append(offsets, h.BaseOffset)
			b = b[h.Size():]
		}
	}
	for want := int64(10); want < 60; want++ {
		if !slices.Contains(offsets, want) {
			t.Fatalf("offset %d (at or above the high watermark) was cleaned", want)
		}
	}
}

func TestCleanerTombstones(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := compactConfig()
	cfg.DeleteRetentionMs = 60_000
	l := openTestLog(t, t.TempDir(), cfg, false, clock)
	appendOK(t, l, newBatch(t, batchOpts{}, kv("a", "1", clock.ms()), kv("b", "1", clock.ms())), 0)
	appendOK(t, l, newBatch(t, batchOpts{}, tombstone("a", clock.ms())), 0)
	rollNow(t, l)
	c := newTestCleaner(t, l, clock.Now, 1<<20)
	cleanOnce(t, c)
	hasTombstone := func() (found bool, horizon int64) {
		for _, r := range allRecords(t, l) {
			if string(r.Key) == "a" {
				if r.Value != nil {
					t.Fatal("a's value survived its tombstone")
				}
				found = true
			}
		}
		for _, h := range logBatches(t, l) {
			if hz, ok := h.deleteHorizonMs(); ok {
				horizon = hz
			}
		}
		return found, horizon
	}
	found, horizon := hasTombstone()
	if !found || horizon != clock.ms()+60_000 {
		t.Fatalf("after the first clean: tombstone %v, delete horizon %d (want %d)", found, horizon, clock.ms()+60_000)
	}
	// Before the horizon, more cleans keep it.
	clock.Advance(30 * time.Second)
	appendOK(t, l, newBatch(t, batchOpts{}, kv("b", "2", clock.ms())), 0)
	rollNow(t, l)
	cleanOnce(t, c)
	if found, _ := hasTombstone(); !found {
		t.Fatal("tombstone removed before delete.retention.ms")
	}
	// Its timestamp survives the rewrite against the horizon.
	for _, r := range allRecords(t, l) {
		if string(r.Key) == "a" && r.Timestamp != clock.ms()-30_000 {
			t.Fatalf("tombstone timestamp %d, want %d", r.Timestamp, clock.ms()-30_000)
		}
	}
	clock.Advance(31 * time.Second)
	appendOK(t, l, newBatch(t, batchOpts{}, kv("b", "3", clock.ms())), 0)
	rollNow(t, l)
	cleanOnce(t, c)
	if found, _ := hasTombstone(); found {
		t.Fatal("tombstone kept past delete.retention.ms")
	}
	checkCompacted(t, l, map[string]modelEntry{"b": {4, []byte("3")}})
}

func TestCleanerMinCompactionLag(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := compactConfig()
	cfg.MinCompactionLagMs = time.Hour.Milliseconds()
	l := openTestLog(t, t.TempDir(), cfg, false, clock)
	for i := range 50 {
		appendOK(t, l, newBatch(t, batchOpts{}, kv("k", fmt.Sprint(i), clock.ms())), 0)
	}
	rollNow(t, l)
	size := l.Size()
	c := newTestCleaner(t, l, clock.Now, 1<<20)
	if cleanOnce(t, c) || l.Size() != size {
		t.Fatal("records younger than min.compaction.lag.ms were compacted")
	}
	clock.Advance(2 * time.Hour)
	if !cleanOnce(t, c) || l.Size() >= size {
		t.Fatal("records older than min.compaction.lag.ms were not compacted")
	}
	checkCompacted(t, l, map[string]modelEntry{"k": {49, []byte("49")}})
}

func TestCleanerMaxCompactionLag(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := compactConfig()
	cfg.MinCleanableDirtyRatio = 0.99 // never dirty enough by ratio
	cfg.MaxCompactionLagMs = time.Minute.Milliseconds()
	l := openTestLog(t, t.TempDir(), cfg, false, clock)
	for i := range 50 {
		appendOK(t, l, newBatch(t, batchOpts{}, kv(fmt.Sprint(i%5), fmt.Sprint(i), clock.ms())), 0)
	}
	rollNow(t, l)
	c := newTestCleaner(t, l, clock.Now, 1<<20)
	cleanOnce(t, c) // all dirty: ratio 1

	for i := range 50 {
		appendOK(t, l, newBatch(t, batchOpts{}, kv(fmt.Sprint(i%5), fmt.Sprint(i), clock.ms())), 0)
	}
	rollNow(t, l)
	if cleanOnce(t, c) {
		t.Fatal("cleaned below min.cleanable.dirty.ratio and within max.compaction.lag.ms")
	}
	clock.Advance(2 * time.Minute)
	if !cleanOnce(t, c) {
		t.Fatal("not cleaned past max.compaction.lag.ms")
	}
}

func TestCleanerCodecs(t *testing.T) {
	t.Parallel()
	for codec := int8(0); codec <= compressionZstd; codec++ {
		t.Run(fmt.Sprint(codec), func(t *testing.T) {
			t.Parallel()
			l := openTestLog(t, t.TempDir(), compactConfig(), false, nil)
			model := map[string]modelEntry{}
			for i := range 40 {
				var recs []testRec
				for j := range 4 {
					k := fmt.Sprintf("key-%d", (i*4+j)%13)
					recs = append(recs, kv(k, fmt.Sprintf("value-%d-%d-%s", i, j, bytes.Repeat([]byte("x"), 30)), int64(1000+i)))
				}
				info := appendOK(t, l, newBatch(t, batchOpts{codec: codec}, recs...), 0)
				for j, r := range recs {
					model[string(r.key)] = modelEntry{info.FirstOffset + int64(j), r.value}
				}
			}
			rollNow(t, l)
			c := newTestCleaner(t, l, nil, 1<<20)
			if !cleanOnce(t, c) {
				t.Fatal("nothing cleaned")
			}
			checkCompacted(t, l, model)
			for _, h := range logBatches(t, l) {
				if h.Compression() != codec {
					t.Fatalf("batch at %d has codec %d, want %d", h.BaseOffset, h.Compression(), codec)
				}
				if h.LastOffsetDelta != 3 {
					t.Fatalf("batch at %d: last offset delta %d, want 3 (kept)", h.BaseOffset, h.LastOffsetDelta)
				}
			}
		})
	}
}

func TestCleanerTransactions(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	cfg := compactConfig()
	cfg.DeleteRetentionMs = 1000
	l := openTestLog(t, t.TempDir(), cfg, false, clock)
	// Producer 7's transaction aborts, producer 8's commits.
	appendOK(t, l, pbatch(t, batchOpts{}, 7, 0, 0, true, kv("x", "aborted", clock.ms())), 0)
	appendOK(t, l, pbatch(t, batchOpts{}, 8, 0, 0, true, kv("y", "committed", clock.ms())), 0)
	markerOK(t, l, 7, false, 0)
	markerOK(t, l, 8, true, 0)
	appendOK(t, l, newBatch(t, batchOpts{}, kv("z", "plain", clock.ms())), 0)
	rollNow(t, l)
	c := newTestCleaner(t, l, clock.Now, 1<<20)
	cleanOnce(t, c)
	checkCompacted(t, l, map[string]modelEntry{"y": {1, []byte("committed")}, "z": {4, []byte("plain")}})
	controls := func() (n int) {
		for _, h := range logBatches(t, l) {
			if h.IsControl() && h.RecordCount > 0 {
				n++
			}
		}
		return n
	}
	if n := controls(); n != 2 {
		t.Fatalf("%d markers after the first clean, want 2 (data of both was still there)", n)
	}
	// Producer 7's last batch stays as an empty batch: its sequence.
	var emptied bool
	for _, h := range logBatches(t, l) {
		if h.ProducerID == 7 && !h.IsControl() && h.RecordCount == 0 && h.LastOffset() == 0 {
			emptied = true
		}
	}
	if !emptied {
		t.Fatal("producer 7's last batch was not kept as an empty batch")
	}
	// While the producers are active their last batches stay (emptied), and
	// they hold the markers. Once they expired, the data goes, then the markers
	// get a delete horizon, and go once it passed.
	l.producers.RemoveExpired(math.MaxInt64)
	appendOK(t, l, newBatch(t, batchOpts{}, kv("y", "later", clock.ms())), 0)
	rollNow(t, l)
	cleanOnce(t, c)
	if n := controls(); n != 2 {
		t.Fatalf("%d markers while data of theirs was still met, want 2", n)
	}
	appendOK(t, l, newBatch(t, batchOpts{}, kv("z", "later", clock.ms())), 0)
	rollNow(t, l)
	cleanOnce(t, c)
	if n := controls(); n != 2 {
		t.Fatalf("%d markers before their horizon, want 2", n)
	}
	clock.Advance(2 * time.Second)
	appendOK(t, l, newBatch(t, batchOpts{}, kv("w", "later", clock.ms())), 0)
	rollNow(t, l)
	cleanOnce(t, c)
	if n := controls(); n != 0 {
		t.Fatalf("%d markers after their horizon, want 0", n)
	}
	for _, h := range logBatches(t, l) {
		if h.ProducerID == 7 || h.ProducerID == 8 {
			t.Fatalf("batch of expired producer %d left at %d", h.ProducerID, h.BaseOffset)
		}
	}
	checkCompacted(t, l, map[string]modelEntry{"y": {5, []byte("later")}, "z": {6, []byte("later")}, "w": {7, []byte("later")}})
	if fu := l.firstUnstable.Load(); fu != -1 {
		t.Fatalf("first unstable offset %d", fu)
	}
}

func TestCleanerKeepsProducerState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openTestLog(t, dir, compactConfig(), false, nil)
	for seq := range int32(20) {
		appendOK(t, l, pbatch(t, batchOpts{}, 9, 0, seq, false, kv("k", fmt.Sprint(seq), 1)), 0)
	}
	appendOK(t, l, newBatch(t, batchOpts{}, kv("k", "last", 1)), 0) // supersedes producer 9's last record
	rollNow(t, l)
	c := newTestCleaner(t, l, nil, 1<<20)
	cleanOnce(t, c)
	l.close(false)
	// Rebuilt from the log alone (no snapshot), the producer state still knows
	// sequence 19: the emptied batch kept it.
	snaps, _ := filepath.Glob(filepath.Join(dir, "*.snapshot"))
	for _, s := range snaps {
		os.Remove(s)
	}
	l2 := openTestLog(t, dir, compactConfig(), false, nil)
	info, err := l2.AppendAsLeader(pbatch(t, batchOpts{}, 9, 0, 19, false, kv("k", "19", 1)), 0)
	if err != nil || !info.Duplicate {
		t.Fatalf("retry of sequence 19: %+v, %v; want a duplicate", info, err)
	}
	if _, err := l2.AppendAsLeader(pbatch(t, batchOpts{}, 9, 0, 20, false, kv("k", "20", 1)), 0); err != nil {
		t.Fatalf("sequence 20: %v", err)
	}
}

func TestCleanerOffsetMapFull(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), compactConfig(), false, nil)
	model := map[string]modelEntry{}
	for round := range 3 {
		for k := range 40 {
			v := fmt.Sprintf("%d", round)
			info := appendOK(t, l, newBatch(t, batchOpts{}, kv(fmt.Sprintf("key%02d", k), v, 1)), 0)
			model[fmt.Sprintf("key%02d", k)] = modelEntry{info.FirstOffset, []byte(v)}
		}
	}
	rollNow(t, l)
	// Room for 10 keys: each clean covers only part of the dirty log.
	c := newTestCleaner(t, l, nil, 12*offsetMapSlotSize)
	if !cleanOnce(t, c) {
		t.Fatal("nothing cleaned")
	}
	if cp, _ := c.checkpoints.get(l); cp >= l.LogEndOffset() {
		t.Fatalf("checkpoint %d: the full map covered the whole log", cp)
	}
	// Never wrong on the way: every key's latest value is there after each pass.
	for passes := 1; ; passes++ {
		got := map[string]bool{}
		for _, r := range allRecords(t, l) {
			if e := model[string(r.Key)]; e.offset == r.Offset {
				got[string(r.Key)] = true
			}
		}
		if len(got) != len(model) {
			t.Fatalf("after %d passes, %d of %d latest values left", passes, len(got), len(model))
		}
		if passes > 100 {
			t.Fatal("never done")
		}
		if !cleanOnce(t, c) {
			break
		}
	}
	if cp, _ := c.checkpoints.get(l); cp != l.LogEndOffset() {
		t.Fatalf("checkpoint %d, want %d", cp, l.LogEndOffset())
	}
	// Pass by pass, every key's older records went with the pass whose map held it.
	checkCompacted(t, l, model)
}

func TestCleanerFollowerCopiesCompactedLeader(t *testing.T) {
	t.Parallel()
	leader := openTestLog(t, t.TempDir(), compactConfig(), false, nil)
	for i := range 200 {
		appendOK(t, leader, newBatch(t, batchOpts{codec: int8(i % 5)}, kv(fmt.Sprint(i%7), fmt.Sprint(i), 1), kv(fmt.Sprint(i%3), fmt.Sprint(i), 1)), 3)
	}
	rollNow(t, leader)
	appendOK(t, leader, newBatch(t, batchOpts{}, kv("tail", "x", 1)), 3)
	c := newTestCleaner(t, leader, nil, 1<<20)
	if !cleanOnce(t, c) {
		t.Fatal("nothing cleaned")
	}
	// A new replica fetches the compacted log from 0: batches with gaps between
	// them, and thinned batches whose offset range stays.
	follower := openTestLog(t, t.TempDir(), compactConfig(), false, nil)
	follow(t, follower, leader, 300)
	if follower.LogEndOffset() != leader.LogEndOffset() {
		t.Fatalf("follower LEO %d, leader %d", follower.LogEndOffset(), leader.LogEndOffset())
	}
	got, want := allRecords(t, follower), allRecords(t, leader)
	if len(got) != len(want) {
		t.Fatalf("follower has %d records, leader %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Offset != want[i].Offset || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Fatalf("record %d: follower %d=%q, leader %d=%q", i, got[i].Offset, got[i].Value, want[i].Offset, want[i].Value)
		}
	}
	// It survives a restart (recovery accepts the gaps) and compacts on its own.
	dir := follower.dir
	follower.close(true)
	f2 := openTestLog(t, dir, compactConfig(), false, nil)
	if f2.LogEndOffset() != leader.LogEndOffset() {
		t.Fatalf("reopened follower LEO %d", f2.LogEndOffset())
	}
	cleanOnce(t, newTestCleaner(t, f2, nil, 1<<20))
}

// leaveSwap builds a log, cleans a copy of it, and lays the copy's cleaned first
// segment into the original's directory as a cleaner that crashed at the given
// step would have left it. It returns the directory and the cleaned log's records.
func leaveSwap(t *testing.T, step string) (string, []Record, int64) {
	t.Helper()
	dir, cleanDir := t.TempDir(), t.TempDir()
	cfg := compactConfig()
	l := openTestLog(t, dir, cfg, false, nil)
	for i := range 120 {
		appendOK(t, l, newBatch(t, batchOpts{}, kv(fmt.Sprint(i%9), fmt.Sprint(i), 1)), 0)
	}
	rollNow(t, l)
	l.close(true)
	for _, f := range segmentFiles(t, dir, "") {
		os.WriteFile(filepath.Join(cleanDir, filepath.Base(f)), readFile(t, f), 0o644)
	}
	cl := openTestLog(t, cleanDir, cfg, true, nil)
	c := newTestCleaner(t, cl, nil, 1<<20)
	one := cfg
	one.SegmentBytes = 1 << 20 // one group: one swap
	cl.setConfig(one)
	if !cleanOnce(t, c) {
		t.Fatal("nothing cleaned")
	}
	want := allRecords(t, cl)
	cp, _ := c.checkpoints.get(cl)
	cl.close(true)
	cleaned := func(sfx string) []byte { return readFile(t, segmentFile(cleanDir, 0, sfx)) }
	switch step {
	case "swap written": // crashed before the old segments went
		for _, sfx := range []string{logFileSuffix, indexFileSuffix, timeIndexFileSuffix} {
			os.WriteFile(segmentFile(dir, 0, sfx+swapFileSuffix), cleaned(sfx), 0o644)
		}
	case "log renamed": // crashed after the old segments went and the log was renamed
		for _, f := range segmentFiles(t, dir, logFileSuffix) {
			if f != segmentFile(dir, 120, logFileSuffix) {
				os.Rename(f, f+deletedFileSuffix)
			}
		}
		for _, f := range append(segmentFiles(t, dir, indexFileSuffix), segmentFiles(t, dir, timeIndexFileSuffix)...) {
			if filepath.Base(f)[:20] != filenamePrefixFromOffset(120) {
				os.Remove(f)
			}
		}
		os.WriteFile(segmentFile(dir, 0, logFileSuffix), cleaned(logFileSuffix), 0o644)
		for _, sfx := range []string{indexFileSuffix, timeIndexFileSuffix} {
			os.WriteFile(segmentFile(dir, 0, sfx+swapFileSuffix), cleaned(sfx), 0o644)
		}
	}
	os.WriteFile(segmentFile(dir, 0, logFileSuffix+cleanedFileSuffix), []byte("half written"), 0o644)
	return dir, want, cp
}

func TestCleanerRecovery(t *testing.T) {
	t.Parallel()
	for _, step := range []string{"swap written", "log renamed"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			dir, want, cp := leaveSwap(t, step)
			l, err := openLog(logParams{dir: dir, topic: "t", config: compactConfig(), now: time.Now, logger: discardLogger, cleanerCheckpoint: cp})
			if err != nil {
				t.Fatal(err)
			}
			defer l.close(false)
			for _, sfx := range []string{swapFileSuffix, cleanedFileSuffix, deletedFileSuffix} {
				if left := segmentFiles(t, dir, sfx); len(left) > 0 {
					t.Fatalf("left over: %v", left)
				}
			}
			// The cleaned segment replaced every one below the active one.
			if logs := segmentFiles(t, dir, logFileSuffix); len(logs) != 2 || len(*l.segments.Load()) != 2 {
				t.Fatalf("segments after recovery: %v", logs)
			}
			got := allRecords(t, l)
			if len(got) != len(want) {
				t.Fatalf("%d records after recovery, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i].Offset != want[i].Offset || !bytes.Equal(got[i].Value, want[i].Value) {
					t.Fatalf("record %d: %d=%q, want %d=%q", i, got[i].Offset, got[i].Value, want[i].Offset, want[i].Value)
				}
			}
			if l.LogEndOffset() != 120 {
				t.Fatalf("LEO %d", l.LogEndOffset())
			}
		})
	}
}

func TestCleanerCheckpointFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, cleanerCheckpointFile)
	c := loadCleanerCheckpoints(path, discardLogger)
	l := &Log{topic: "my-topic", partition: 3}
	if err := c.advance(l, 42); err != nil {
		t.Fatal(err)
	}
	if got := string(readFile(t, path)); got != "0\n1\nmy-topic 3 42\n" {
		t.Fatalf("file %q", got)
	}
	if off := loadCleanerCheckpoints(path, discardLogger).lookup("my-topic", 3); off != 42 {
		t.Fatalf("reloaded %d", off)
	}
	c.remove("my-topic")
	if off := loadCleanerCheckpoints(path, discardLogger).lookup("my-topic", 3); off != -1 {
		t.Fatalf("after remove: %d", off)
	}
}

func TestLogManagerCleaner(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := LogManagerOptions{Dir: dir, Logger: discardLogger, RetentionCheckInterval: time.Hour, FlushCheckInterval: time.Hour,
		Cleaner: &CleanerConfig{Enable: true, Threads: 2, DedupeBufferSize: 1 << 20, IOBufferSize: 1 << 16, Backoff: 10 * time.Millisecond}}
	m, err := OpenLogManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	top, err := m.CreateTopic("changelog", 2, map[string]string{"cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.01"})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range top.Partitions {
		for i := range 500 {
			appendOK(t, l, newBatch(t, batchOpts{codec: compressionLZ4}, kv(fmt.Sprint(i%10), fmt.Sprint(i), 1)), 0)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, l := range top.Partitions {
		for l.Size() > 4*4096 {
			if time.Now().After(deadline) {
				t.Fatalf("not compacted: %d bytes", l.Size())
			}
			m.Cleaner().Wakeup()
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	cps := loadCleanerCheckpoints(filepath.Join(dir, cleanerCheckpointFile), discardLogger)
	if cps.lookup("changelog", 0) <= 0 || cps.lookup("changelog", 1) <= 0 {
		t.Fatalf("checkpoints not written: %v", cps.offsets)
	}
	m2, err := OpenLogManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	top2, _ := m2.Topic("changelog")
	for _, l := range top2.Partitions {
		if l.LogEndOffset() != 500 {
			t.Fatalf("LEO %d after restart", l.LogEndOffset())
		}
		got := allRecords(t, l)
		last := map[string]string{}
		for _, r := range got {
			last[string(r.Key)] = string(r.Value)
		}
		for k := range 10 {
			if want := fmt.Sprint(490 + k); last[fmt.Sprint(k)] != want {
				t.Fatalf("key %d: %q, want %q", k, last[fmt.Sprint(k)], want)
			}
		}
	}
	if st := m2.Cleaner().Stats(); st.UncleanablePartitions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// FuzzCleanBatch feeds arbitrary bytes, as a batch read from a segment, to the
// cleaner's batch filter (the new decoder of disk bytes: records with their raw
// encodings, and the rebuild). Invariants: never panics; errors are
// ErrCorruptRecord; what it writes is whole batches with valid CRCs, the input's
// base offset and last offset delta, the input's codec when records stay, and
// records that are a subsequence of the input's, keys, values and timestamps
// unchanged.
func FuzzCleanBatch(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, int64(0), false)
	}
	tomb := newBatch(f, batchOpts{codec: compressionZstd}, kv("a", "1", 10), tombstone("b", 20), kv("a", "2", 30))
	f.Add(tomb, int64(1), true)
	f.Add(tomb, int64(2), false)
	f.Fuzz(func(t *testing.T, b []byte, mapOffset int64, horizonPassed bool) {
		h, err := ParseBatchHeader(b)
		if err != nil || h.Size() != len(b) {
			return // the cleaner reads whole batches by their header
		}
		m := newSkimpyOffsetMap(64 * offsetMapSlotSize)
		m.put([]byte("a"), mapOffset)
		m.put([]byte("k"), mapOffset)
		now := int64(1000)
		if horizonPassed {
			now = math.MaxInt64 - 1
		}
		filter := &batchFilter{offsetMap: m, txns: newCleanedTransactionMetadata(nil), nowMs: now, deleteRetentionMs: 5}
		var in []Record
		recordsLimit(b, 1<<20, true, func(r Record) bool { in = append(in, cloneRecord(r)); return true })
		out, err := filter.filter(nil, b, h)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error not ErrCorruptRecord: %v", err)
			}
			return
		}
		if len(out) == 0 {
			return
		}
		oh, err := ParseBatchHeader(out)
		if err != nil || oh.Size() != len(out) || VerifyBatchCRC(out) != nil {
			t.Fatalf("wrote an invalid batch: %+v %v", oh, err)
		}
		if oh.BaseOffset != h.BaseOffset || oh.LastOffsetDelta != h.LastOffsetDelta || (oh.RecordCount > 0 && oh.Compression() != h.Compression()) {
			t.Fatalf("batch changed: %+v from %+v", oh, h)
		}
		var got []Record
		if err := recordsLimit(out, 1<<20, true, func(r Record) bool { got = append(got, cloneRecord(r)); return true }); err != nil {
			t.Fatalf("written batch does not decode: %v", err)
		}
		j := 0
		for _, r := range got {
			for j < len(in) && in[j].Offset != r.Offset {
				j++
			}
			if j == len(in) || !bytes.Equal(in[j].Key, r.Key) || !bytes.Equal(in[j].Value, r.Value) ||
				(h.TimestampType() == 0 && in[j].Timestamp != r.Timestamp) {
				t.Fatalf("record at %d is not the input's", r.Offset)
			}
			j++
		}
	})
}

// BenchmarkLogCleaner measures cleaner throughput over a log of 1 KiB records,
// each key written 10 times, in lz4 batches of 10 (b.SetBytes: MB/s is bytes of
// log cleaned per second).
func BenchmarkLogCleaner(b *testing.B) {
	cfg := compactConfig()
	cfg.SegmentBytes = 8 << 20
	pad := bytes.Repeat([]byte("v"), 1000)
	for _, codec := range []struct {
		name  string
		codec int8
	}{{"none", compressionNone}, {"lz4", compressionLZ4}, {"zstd", compressionZstd}} {
		b.Run(codec.name, func(b *testing.B) {
			var size int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				l := openTestLog(b, b.TempDir(), cfg, false, nil)
				for n := range 2000 {
					var recs []testRec
					for j := range 10 {
						recs = append(recs, testRec{key: fmt.Appendf(nil, "key-%05d", (n*10+j)%2000), value: pad, ts: 1})
					}
					appendOK(b, l, newBatch(b, batchOpts{codec: codec.codec}, recs...), 0)
				}
				rollNow(b, l)
				size = l.Size()
				c := newTestCleaner(b, l, nil, 128<<20)
				b.StartTimer()
				if !cleanOnce(b, c) {
					b.Fatal("nothing cleaned")
				}
			}
			b.SetBytes(size)
		})
	}
}

// A fetch that got a region of a segment before the clean swapped it out still
// sends the old bytes; the old file goes when the region is released.
func TestCleanerKeepsRegionsReadable(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), compactConfig(), false, nil)
	for i := range 80 {
		appendOK(t, l, newBatch(t, batchOpts{codec: compressionSnappy}, kv("k", fmt.Sprint(i), 1)), 0)
	}
	rollNow(t, l)
	info, err := l.Read(0, 1<<20, l.HighWatermark(), true)
	if err != nil {
		t.Fatal(err)
	}
	before, err := info.Records.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !cleanOnce(t, newTestCleaner(t, l, nil, 1<<20)) {
		t.Fatal("nothing cleaned")
	}
	if deleted := segmentFiles(t, l.dir, deletedFileSuffix); len(deleted) == 0 {
		t.Fatal("the replaced segment held by a region is gone already")
	}
	after, err := info.Records.Bytes()
	if err != nil || !bytes.Equal(after, before) {
		t.Fatalf("region of the replaced segment: %d bytes (had %d), %v", len(after), len(before), err)
	}
	info.Records.Release()
	if deleted := segmentFiles(t, l.dir, deletedFileSuffix); len(deleted) != 0 {
		t.Fatalf("replaced segment files left after the last release: %v", deleted)
	}
}

// Reads racing the cleaner's swaps find every offset still in the log: a
// fetch that picked a segment just as a cleaned copy replaced it reads the
// copy, where it once got OFFSET_OUT_OF_RANGE and the consumer reset.
func TestCleanerSwapDuringReads(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), compactConfig(), false, nil)
	done := make(chan struct{})
	readErr := make(chan error, 1)
	var reads int
	go func() {
		defer close(readErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			// Every offset below the high watermark is in the log: compaction
			// leaves gaps, never an offset out of range.
			for off := l.LogStartOffset(); off < l.HighWatermark(); {
				info, err := l.Read(off, 512, l.HighWatermark(), true)
				if err != nil {
					readErr <- fmt.Errorf("Read(%d) after %d reads: %w", off, reads, err)
					return
				}
				reads++
				info.Records.Release()
				if info.LastOffset < 0 {
					break
				}
				off = info.LastOffset + 1
			}
		}
	}()
	cleaner := newTestCleaner(t, l, nil, 1<<20)
	cleaned := 0
	for round := range 60 {
		for i := range 10 {
			appendOK(t, l, newBatch(t, batchOpts{}, kv(fmt.Sprint("k", i%4), fmt.Sprint(round, "-", i), 1)), 0)
		}
		rollNow(t, l)
		if cleanOnce(t, cleaner) {
			cleaned++
		}
	}
	close(done)
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	if cleaned < 30 || reads == 0 {
		t.Fatalf("%d cleans and %d reads: the race was not exercised", cleaned, reads)
	}
}

// A clean whose context is cancelled (LogManager.Close) or whose segments went
// meanwhile (retention, DeleteRecords) leaves the log as it was and no files.
func TestCleanerAborts(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*Log, *cleaner, []*LogSegment) {
		l := openTestLog(t, t.TempDir(), compactConfig(), false, nil)
		for i := range 80 {
			appendOK(t, l, newBatch(t, batchOpts{}, kv(fmt.Sprint(i%4), fmt.Sprint(i), 1)), 0)
		}
		rollNow(t, l)
		segs := *l.segments.Load()
		return l, &cleaner{cfg: l.Config(), ioBufferSize: 4096, log: l, ctx: context.Background()}, segs[:2]
	}
	filter := func() *batchFilter {
		m := newSkimpyOffsetMap(1 << 16)
		return &batchFilter{offsetMap: m, txns: newCleanedTransactionMetadata(nil)}
	}
	check := func(t *testing.T, l *Log, err, want error, before []byte) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("clean: %v, want %v", err, want)
		}
		for _, sfx := range []string{cleanedFileSuffix, swapFileSuffix} {
			if left := segmentFiles(t, l.dir, sfx); len(left) > 0 {
				t.Fatalf("left over: %v", left)
			}
		}
		if before != nil {
			if got := readFile(t, segmentFile(l.dir, 0, logFileSuffix)); !bytes.Equal(got, before) {
				t.Fatal("the log changed")
			}
		}
	}
	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		l, cl, group := setup(t)
		before := readFile(t, segmentFile(l.dir, 0, logFileSuffix))
		c, cancel := context.WithCancel(context.Background())
		cancel()
		cl.ctx = c
		_, _, err := cl.cleanSegments(group, filter())
		check(t, l, err, context.Canceled, before)
	})
	t.Run("segments deleted", func(t *testing.T) {
		t.Parallel()
		l, cl, group := setup(t)
		if _, err := l.DeleteRecordsBefore(group[1].baseOffset); err != nil {
			t.Fatal(err)
		}
		_, _, err := cl.cleanSegments(group, filter())
		check(t, l, err, errSegmentsChanged, nil)
	})
	t.Run("segments changed before the swap", func(t *testing.T) {
		t.Parallel()
		l, cl, group := setup(t)
		before := readFile(t, segmentFile(l.dir, 0, logFileSuffix))
		err := l.replaceSegments(group, []int64{group[0].size() + 1, group[1].size()}, 0, scanResult{})
		check(t, l, err, errSegmentsChanged, before)
		_ = cl
	})
}

// A follower's truncation below the cleaner checkpoint brings it down: what is
// appended after the cut is dirty (LogCleanerManager.maybeTruncateCheckpoint).
func TestCleanerCheckpointFollowsTruncation(t *testing.T) {
	t.Parallel()
	m := openTestManager(t, t.TempDir(), nil, DefaultLogConfig())
	top, err := m.CreateTopic("c", 1, map[string]string{"cleanup.policy": "compact"})
	if err != nil {
		t.Fatal(err)
	}
	l := top.Partitions[0]
	for i := range 20 {
		appendOK(t, l, newBatch(t, batchOpts{}, kv("k", fmt.Sprint(i), 1)), 0)
	}
	if err := m.checkpoints.advance(l, 15); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateTo(10); err != nil {
		t.Fatal(err)
	}
	if cp, _ := m.checkpoints.get(l); cp != 10 {
		t.Fatalf("checkpoint %d after truncation to 10", cp)
	}
}

// FuzzCleanerCheckpoints: arbitrary bytes as the cleaner-offset-checkpoint file.
// Invariants: loading never panics; what loads is written back in Kafka's format
// and loads again to the same offsets.
func FuzzCleanerCheckpoints(f *testing.F) {
	f.Add([]byte("0\n2\nt 0 5\nother-topic 12 99\n"))
	f.Add([]byte("0\n1\nt 0 5"))
	f.Add([]byte("1\n0\n"))
	f.Add([]byte("0\n3\nt 0 5\n"))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, cleanerCheckpointFile)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		c := loadCleanerCheckpoints(path, discardLogger)
		if len(c.offsets) == 0 {
			return
		}
		c.mu.Lock()
		err := c.writeLocked()
		c.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		again := loadCleanerCheckpoints(path, discardLogger)
		if len(again.offsets) != len(c.offsets) {
			t.Fatalf("reloaded %d entries, wrote %d", len(again.offsets), len(c.offsets))
		}
		for tp, off := range c.offsets {
			if again.offsets[tp] != off {
				t.Fatalf("%v: reloaded %d, wrote %d", tp, again.offsets[tp], off)
			}
		}
	})
}
