package storage

import (
	"errors"
	"testing"
	"time"
)

// segmentedLog makes a log whose segments hold two one-record batches each; batch i
// has timestamp ts(i).
func segmentedLog(t *testing.T, clock *fakeClock, batches int, ts func(i int) int64) (*Log, int64) {
	t.Helper()
	cfg := testLogConfig()
	one := int64(len(newBatch(t, batchOpts{}, rec("x", 0))))
	cfg.SegmentBytes = 2 * one
	l := openTestLog(t, t.TempDir(), cfg, false, clock)
	for i := range batches {
		appendOK(t, l, newBatch(t, batchOpts{}, rec("x", ts(i))), 0)
	}
	return l, one
}

func segmentBases(l *Log) []int64 {
	var out []int64
	for _, s := range *l.segments.Load() {
		out = append(out, s.baseOffset)
	}
	return out
}

func TestRetentionByTime(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	t0 := clock.ms()
	// Segments [0,2) [2,4) [4,6) [6,8) [8,10); batch i at t0 + 100*i.
	l, _ := segmentedLog(t, clock, 10, func(i int) int64 { return t0 + 100*int64(i) })
	cfg := l.Config()
	cfg.RetentionMs = 1000
	l.setConfig(cfg)

	clock.Advance(1250 * time.Millisecond) // now - largest > 1000 for largest < t0+250: segment [0,2) only
	if n, err := l.deleteRetentionBreachedSegments(); err != nil || n != 1 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	if got := segmentBases(l); len(got) != 4 || got[0] != 2 || l.LogStartOffset() != 2 {
		t.Fatalf("segments %v, LSO %d", got, l.LogStartOffset())
	}
	if _, err := l.Read(1, 100, 10, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below new log start: %v", err)
	}

	// With the compact policy only, nothing is deleted by time.
	cfg.CleanupPolicy = "compact"
	l.setConfig(cfg)
	clock.Advance(time.Hour)
	if n, _ := l.deleteRetentionBreachedSegments(); n != 0 {
		t.Fatalf("compact policy deleted %d segments", n)
	}

	// Segments at or beyond the high watermark are kept.
	cfg.CleanupPolicy = "compact,delete"
	l.setConfig(cfg)
	l.UpdateHighWatermark(6)
	if n, _ := l.deleteRetentionBreachedSegments(); n != 2 || l.LogStartOffset() != 6 {
		t.Fatalf("deleted %d, LSO %d; want 2 segments up to the HW", n, l.LogStartOffset())
	}

	// Everything expired: the active segment is rolled and deleted too.
	l.UpdateHighWatermark(10)
	if n, _ := l.deleteRetentionBreachedSegments(); n != 2 {
		t.Fatalf("deleted %d, want 2", n)
	}
	if got := segmentBases(l); len(got) != 1 || got[0] != 10 || l.activeSegment().size() != 0 {
		t.Fatalf("segments %v after full expiry", got)
	}
	if l.LogStartOffset() != 10 || l.LogEndOffset() != 10 || l.HighWatermark() != 10 {
		t.Fatalf("LSO %d LEO %d HW %d", l.LogStartOffset(), l.LogEndOffset(), l.HighWatermark())
	}
	if info, err := l.Read(10, 100, 10, true); err != nil || info.Records.Len() != 0 {
		t.Fatalf("read at LEO: %v", err)
	}
	// An empty active segment is never deleted, and appends continue.
	if n, _ := l.deleteRetentionBreachedSegments(); n != 0 {
		t.Fatalf("deleted the empty active segment")
	}
	if info := appendOK(t, l, newBatch(t, batchOpts{}, rec("x", clock.ms())), 0); info.FirstOffset != 10 {
		t.Fatalf("append after expiry at %d", info.FirstOffset)
	}
	if len(segmentFiles(t, l.dir, deletedFileSuffix)) != 0 {
		t.Fatal(".deleted files left behind")
	}

	// Unlimited retention.
	cfg.RetentionMs = -1
	l.setConfig(cfg)
	clock.Advance(1000 * time.Hour)
	if n, _ := l.deleteRetentionBreachedSegments(); n != 0 {
		t.Fatalf("retention.ms=-1 deleted %d", n)
	}
}

func TestRetentionByBytes(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	l, one := segmentedLog(t, clock, 9, func(int) int64 { return clock.ms() }) // 4 full segments + 1 batch
	cfg := l.Config()
	cfg.RetentionBytes = 3 * one // size 9 -> delete while size - seg >= 3
	l.setConfig(cfg)
	if n, err := l.deleteRetentionBreachedSegments(); err != nil || n != 3 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	if l.Size() != 3*one || l.LogStartOffset() != 6 {
		t.Fatalf("size %d (one=%d), LSO %d", l.Size(), one, l.LogStartOffset())
	}
	cfg.RetentionBytes = 100 * one
	l.setConfig(cfg)
	if n, _ := l.deleteRetentionBreachedSegments(); n != 0 {
		t.Fatalf("deleted %d under the limit", n)
	}
	cfg.RetentionBytes = -1
	l.setConfig(cfg)
	if n, _ := l.deleteRetentionBreachedSegments(); n != 0 {
		t.Fatalf("deleted %d with no limit", n)
	}
}

func TestRunRetentionManager(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := openTestManager(t, t.TempDir(), clock, LogConfig{})
	one := len(newBatch(t, batchOpts{}, rec("x", 0)))
	topic, err := m.CreateTopic("r", 2, map[string]string{"segment.bytes": itoa(one), "retention.ms": "60000"})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range topic.Partitions {
		for range 3 {
			appendOK(t, l, newBatch(t, batchOpts{}, rec("x", clock.ms())), 0)
		}
	}
	clock.Advance(61 * time.Second)
	m.RunRetention()
	for _, l := range topic.Partitions {
		if l.LogStartOffset() != 3 || l.NumSegments() != 1 {
			t.Fatalf("partition %d: LSO %d, %d segments", l.Partition(), l.LogStartOffset(), l.NumSegments())
		}
	}
}
