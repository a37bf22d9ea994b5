package storage

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Topic config keys this package acts on (Kafka TopicConfig names).
const (
	segmentBytesConfig         = "segment.bytes"
	segmentMsConfig            = "segment.ms"
	segmentIndexBytesConfig    = "segment.index.bytes"
	indexIntervalBytesConfig   = "index.interval.bytes"
	retentionMsConfig          = "retention.ms"
	retentionBytesConfig       = "retention.bytes"
	cleanupPolicyConfig        = "cleanup.policy"
	maxMessageBytesConfig      = "max.message.bytes"
	messageTimestampTypeConfig = "message.timestamp.type"
	timestampBeforeMaxMsConfig = "message.timestamp.before.max.ms"
	timestampAfterMaxMsConfig  = "message.timestamp.after.max.ms"
	flushMessagesConfig        = "flush.messages"
	flushMsConfig              = "flush.ms"
	fileDeleteDelayMsConfig    = "file.delete.delay.ms"
	minInsyncReplicasConfig    = "min.insync.replicas"
	deleteRetentionMsConfig    = "delete.retention.ms"
	minCompactionLagMsConfig   = "min.compaction.lag.ms"
	maxCompactionLagMsConfig   = "max.compaction.lag.ms"
	minCleanableRatioConfig    = "min.cleanable.dirty.ratio"
)

// LogConfig is the per-topic log configuration (Kafka LogConfig), with Kafka's names
// and defaults. The broker maps its log.* settings onto LogManagerOptions.Defaults;
// topic overrides are applied on top with Apply.
type LogConfig struct {
	SegmentBytes         int64  // segment.bytes: roll when the active segment would exceed it
	SegmentMs            int64  // segment.ms: roll when the active segment is older
	SegmentIndexBytes    int64  // segment.index.bytes: roll when an index would exceed it
	IndexIntervalBytes   int64  // index.interval.bytes: bytes between offset index entries
	RetentionMs          int64  // retention.ms; -1 keeps segments forever
	RetentionBytes       int64  // retention.bytes; negative is unlimited
	CleanupPolicy        string // cleanup.policy: "delete", "compact" or both
	MaxMessageBytes      int32  // max.message.bytes: largest batch accepted
	MessageTimestampType string // message.timestamp.type: "CreateTime" or "LogAppendTime"
	// message.timestamp.before.max.ms / after.max.ms: how far a CreateTime
	// record may lag or lead the broker's clock (LogValidator.validateTimestamp).
	MessageTimestampBeforeMaxMs int64
	MessageTimestampAfterMaxMs  int64
	FlushMessages               int64 // flush.messages: fsync after this many unflushed messages
	FlushMs                     int64 // flush.ms: fsync when the last flush is older
	FileDeleteDelayMs           int64 // file.delete.delay.ms: stored; deleted files go when unreferenced
	MinInsyncReplicas           int32 // min.insync.replicas: read by the broker for acks=all
	// Compaction (cleanup.policy compact; Kafka's LogCleaner reads these).
	DeleteRetentionMs      int64   // delete.retention.ms: how long tombstones and markers outlive their first clean
	MinCompactionLagMs     int64   // min.compaction.lag.ms: records younger than this stay uncompacted
	MaxCompactionLagMs     int64   // max.compaction.lag.ms: records older than this make the log cleanable at any ratio
	MinCleanableDirtyRatio float64 // min.cleanable.dirty.ratio: dirty/total bytes above which a log is cleaned
}

// DefaultLogConfig returns Kafka's topic defaults.
func DefaultLogConfig() LogConfig {
	return LogConfig{
		SegmentBytes:         1 << 30,
		SegmentMs:            7 * 24 * 60 * 60 * 1000,
		SegmentIndexBytes:    10 << 20,
		IndexIntervalBytes:   4096,
		RetentionMs:          7 * 24 * 60 * 60 * 1000,
		RetentionBytes:       -1,
		CleanupPolicy:        "delete",
		MaxMessageBytes:      1024*1024 + 12,
		MessageTimestampType: "CreateTime",
		// Kafka 4.0 bounds future timestamps to an hour (KIP-1030).
		MessageTimestampBeforeMaxMs: math.MaxInt64,
		MessageTimestampAfterMaxMs:  3600000,
		FlushMessages:               math.MaxInt64,
		FlushMs:                     math.MaxInt64,
		FileDeleteDelayMs:           60000,
		MinInsyncReplicas:           1,
		DeleteRetentionMs:           24 * 60 * 60 * 1000,
		MinCompactionLagMs:          0,
		MaxCompactionLagMs:          math.MaxInt64,
		MinCleanableDirtyRatio:      0.5,
	}
}

// Apply returns a copy of c with the topic-level overrides applied. Keys it does not
// know are ignored: the broker owns the full catalogue of topic configs and validates
// names. A known key with an invalid value is an error naming the key, wrapping
// ErrInvalidConfig. Validation follows the ConfigDef validators of Kafka's LogConfig.
func (c LogConfig) Apply(overrides map[string]string) (LogConfig, error) {
	for k, raw := range overrides {
		v := strings.TrimSpace(raw)
		var err error
		switch k {
		case segmentBytesConfig:
			c.SegmentBytes, err = parseLong(v, 14, math.MaxInt32) // LegacyRecord.RECORD_OVERHEAD_V0
		case segmentMsConfig:
			c.SegmentMs, err = parseLong(v, 1, math.MaxInt64)
		case segmentIndexBytesConfig:
			c.SegmentIndexBytes, err = parseLong(v, 4, math.MaxInt32)
		case indexIntervalBytesConfig:
			c.IndexIntervalBytes, err = parseLong(v, 0, math.MaxInt32)
		case retentionMsConfig:
			c.RetentionMs, err = parseLong(v, -1, math.MaxInt64)
		case retentionBytesConfig:
			c.RetentionBytes, err = parseLong(v, math.MinInt64, math.MaxInt64)
		case cleanupPolicyConfig:
			c.CleanupPolicy, err = parseCleanupPolicy(v)
		case maxMessageBytesConfig:
			var n int64
			n, err = parseLong(v, 0, math.MaxInt32)
			c.MaxMessageBytes = int32(n)
		case messageTimestampTypeConfig:
			if v != "CreateTime" && v != "LogAppendTime" {
				err = fmt.Errorf("must be CreateTime or LogAppendTime")
			}
			c.MessageTimestampType = v
		case timestampBeforeMaxMsConfig:
			c.MessageTimestampBeforeMaxMs, err = parseLong(v, 0, math.MaxInt64)
		case timestampAfterMaxMsConfig:
			c.MessageTimestampAfterMaxMs, err = parseLong(v, 0, math.MaxInt64)
		case flushMessagesConfig:
			c.FlushMessages, err = parseLong(v, 1, math.MaxInt64)
		case flushMsConfig:
			c.FlushMs, err = parseLong(v, 0, math.MaxInt64)
		case fileDeleteDelayMsConfig:
			c.FileDeleteDelayMs, err = parseLong(v, 0, math.MaxInt64)
		case minInsyncReplicasConfig:
			var n int64
			n, err = parseLong(v, 1, math.MaxInt32)
			c.MinInsyncReplicas = int32(n)
		case deleteRetentionMsConfig:
			c.DeleteRetentionMs, err = parseLong(v, 0, math.MaxInt64)
		case minCompactionLagMsConfig:
			c.MinCompactionLagMs, err = parseLong(v, 0, math.MaxInt64)
		case maxCompactionLagMsConfig:
			c.MaxCompactionLagMs, err = parseLong(v, 1, math.MaxInt64)
		case minCleanableRatioConfig:
			c.MinCleanableDirtyRatio, err = strconv.ParseFloat(v, 64)
			if err != nil || c.MinCleanableDirtyRatio < 0 || c.MinCleanableDirtyRatio > 1 {
				err = fmt.Errorf("must be a number in [0, 1]")
			}
		default:
			continue
		}
		if err != nil {
			return LogConfig{}, fmt.Errorf("%w: %s=%q: %v", ErrInvalidConfig, k, raw, err)
		}
	}
	return c, nil
}

// validate checks a whole config (broker defaults have no override map to vet them).
func (c LogConfig) validate() error {
	_, err := LogConfig{}.Apply(c.Values())
	return err
}

// Values renders every field under its topic config name, as Kafka prints it; the
// inverse of Apply. validate runs it back through Apply; DescribeConfigs reports it.
func (c LogConfig) Values() map[string]string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	return map[string]string{
		segmentBytesConfig:         i(c.SegmentBytes),
		segmentMsConfig:            i(c.SegmentMs),
		segmentIndexBytesConfig:    i(c.SegmentIndexBytes),
		indexIntervalBytesConfig:   i(c.IndexIntervalBytes),
		retentionMsConfig:          i(c.RetentionMs),
		retentionBytesConfig:       i(c.RetentionBytes),
		cleanupPolicyConfig:        c.CleanupPolicy,
		maxMessageBytesConfig:      i(int64(c.MaxMessageBytes)),
		messageTimestampTypeConfig: c.MessageTimestampType,
		timestampBeforeMaxMsConfig: i(c.MessageTimestampBeforeMaxMs),
		timestampAfterMaxMsConfig:  i(c.MessageTimestampAfterMaxMs),
		flushMessagesConfig:        i(c.FlushMessages),
		flushMsConfig:              i(c.FlushMs),
		fileDeleteDelayMsConfig:    i(c.FileDeleteDelayMs),
		minInsyncReplicasConfig:    i(int64(c.MinInsyncReplicas)),
		deleteRetentionMsConfig:    i(c.DeleteRetentionMs),
		minCompactionLagMsConfig:   i(c.MinCompactionLagMs),
		maxCompactionLagMsConfig:   i(c.MaxCompactionLagMs),
		minCleanableRatioConfig:    strconv.FormatFloat(c.MinCleanableDirtyRatio, 'g', -1, 64),
	}
}

// deleteEnabled reports whether time/size retention applies (cleanup.policy has "delete").
func (c LogConfig) deleteEnabled() bool { return c.hasPolicy("delete") }

// CompactEnabled reports whether the LogCleaner compacts the log (cleanup.policy has
// "compact"); produce then refuses records without a key, as Kafka's LogValidator does.
func (c LogConfig) CompactEnabled() bool { return c.hasPolicy("compact") }

// hasPolicy is asked on every produced batch: it walks the list without
// allocating one.
func (c LogConfig) hasPolicy(want string) bool {
	for p := range strings.SplitSeq(c.CleanupPolicy, ",") {
		if strings.TrimSpace(p) == want {
			return true
		}
	}
	return false
}

func (c LogConfig) logAppendTime() bool { return c.MessageTimestampType == "LogAppendTime" }

func parseLong(v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not an integer")
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("must be in [%d, %d]", lo, hi)
	}
	return n, nil
}

// parseCleanupPolicy accepts a comma-separated list drawn from "compact" and "delete"
// (ValidList.in). An empty list means neither: segments are kept forever.
func parseCleanupPolicy(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	parts := strings.Split(v, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p != "compact" && p != "delete" {
			return "", fmt.Errorf("must be a list of compact, delete")
		}
		parts[i] = p
	}
	return strings.Join(parts, ","), nil
}
