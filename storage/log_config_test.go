package storage

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestLogConfigApply(t *testing.T) {
	t.Parallel()
	def := DefaultLogConfig()
	if def.SegmentBytes != 1073741824 || def.SegmentMs != 604800000 || def.SegmentIndexBytes != 10485760 ||
		def.IndexIntervalBytes != 4096 || def.RetentionMs != 604800000 || def.RetentionBytes != -1 ||
		def.CleanupPolicy != "delete" || def.MaxMessageBytes != 1048588 || def.MessageTimestampType != "CreateTime" ||
		def.FlushMessages != math.MaxInt64 || def.FlushMs != math.MaxInt64 || def.FileDeleteDelayMs != 60000 || def.MinInsyncReplicas != 1 {
		t.Fatalf("defaults %+v", def)
	}
	if err := def.validate(); err != nil {
		t.Fatal(err)
	}

	got, err := def.Apply(map[string]string{
		"segment.bytes": " 1024 ", "segment.ms": "1", "segment.index.bytes": "4096", "index.interval.bytes": "0",
		"retention.ms": "-1", "retention.bytes": "-5", "cleanup.policy": "compact, delete", "max.message.bytes": "0",
		"message.timestamp.type": "LogAppendTime", "flush.messages": "1", "flush.ms": "0", "file.delete.delay.ms": "0",
		"min.insync.replicas": "2", "compression.type": "lz4", "some.future.key": "whatever",
		"message.timestamp.before.max.ms": "5", "message.timestamp.after.max.ms": "6",
		"delete.retention.ms": "7", "min.compaction.lag.ms": "8", "max.compaction.lag.ms": "9", "min.cleanable.dirty.ratio": "0.25",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := LogConfig{
		SegmentBytes: 1024, SegmentMs: 1, SegmentIndexBytes: 4096, IndexIntervalBytes: 0, RetentionMs: -1,
		RetentionBytes: -5, CleanupPolicy: "compact,delete", MaxMessageBytes: 0, MessageTimestampType: "LogAppendTime",
		MessageTimestampBeforeMaxMs: 5, MessageTimestampAfterMaxMs: 6,
		FlushMessages: 1, FlushMs: 0, FileDeleteDelayMs: 0, MinInsyncReplicas: 2,
		DeleteRetentionMs: 7, MinCompactionLagMs: 8, MaxCompactionLagMs: 9, MinCleanableDirtyRatio: 0.25,
	}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if !got.deleteEnabled() || !got.CompactEnabled() || !got.logAppendTime() || def.CompactEnabled() {
		t.Fatal("helpers")
	}
	if def.SegmentBytes != 1<<30 {
		t.Fatal("Apply modified its receiver")
	}
	if c, _ := def.Apply(map[string]string{"cleanup.policy": ""}); c.deleteEnabled() {
		t.Fatal("empty cleanup.policy enables delete")
	}

	bad := []struct{ key, value string }{
		{"segment.bytes", "13"},
		{"segment.bytes", "2147483648"},
		{"segment.bytes", "1GB"},
		{"segment.ms", "0"},
		{"segment.index.bytes", "3"},
		{"index.interval.bytes", "-1"},
		{"retention.ms", "-2"},
		{"retention.bytes", "lots"},
		{"cleanup.policy", "delete,archive"},
		{"max.message.bytes", "-1"},
		{"message.timestamp.type", "createtime"},
		{"flush.messages", "0"},
		{"flush.ms", "-1"},
		{"file.delete.delay.ms", "-1"},
		{"min.insync.replicas", "0"},
	}
	for _, b := range bad {
		_, err := def.Apply(map[string]string{b.key: b.value})
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), b.key) {
			t.Errorf("%s=%q: err = %v", b.key, b.value, err)
		}
	}
}

// CompactEnabled is asked for every produced batch, so it must not allocate.
func TestCleanupPolicyChecks(t *testing.T) {
	for _, tc := range []struct {
		policy           string
		compact, deleted bool
	}{
		{"delete", false, true},
		{"compact", true, false},
		{"compact,delete", true, true},
		{" delete , compact ", true, true},
		{"", false, false},
		{"compacted", false, false},
	} {
		c := LogConfig{CleanupPolicy: tc.policy}
		if c.CompactEnabled() != tc.compact || c.deleteEnabled() != tc.deleted {
			t.Errorf("%q: compact %v delete %v, want %v %v", tc.policy, c.CompactEnabled(), c.deleteEnabled(), tc.compact, tc.deleted)
		}
	}
	c := LogConfig{CleanupPolicy: "delete,compact"}
	if n := testing.AllocsPerRun(100, func() { c.CompactEnabled() }); n != 0 {
		t.Errorf("CompactEnabled allocates %v times", n)
	}
}
