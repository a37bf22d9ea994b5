package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kbroker/kbroker/idempotence"
)

// Log is one partition's log (Kafka UnifiedLog, with LocalLog folded in): an ordered
// set of LogSegments, the last of which is active and takes appends.
//
// Concurrency: appends, rolls, segment deletion and closing are serialized by mu.
// Reads take no lock: they load an immutable snapshot of the segment list and the log
// end offset (with the position it sits at), which appends publish only after the
// bytes are written, and hold a reference on each segment file they touch.
//
// Offsets (UnifiedLog's vocabulary):
//   - LogStartOffset: the first offset readers may ask for. Moved up (never down) by
//     DeleteRecordsBefore and by retention deleting segments.
//   - LogEndOffset (LEO): the offset the next appended record gets.
//   - HighWatermark: the end of what is committed and visible to consumers. Kept apart
//     from LEO: the replica manager moves it (today to LEO after each append, later
//     to the ISR minimum).
//   - LastStableOffset: the end of what read_committed consumers see: the high
//     watermark, or the first offset of the oldest open transaction if lower.
//
// Like UnifiedLog, a Log owns its partition's producer state: appends check
// idempotent producers' sequences under the same lock that orders the writes, and
// transaction markers close transactions, feeding the LSO and the TransactionIndex.
type Log struct {
	dir       string
	topic     string
	partition int32
	logger    *slog.Logger
	now       func() time.Time
	// persistLogStartOffset makes a DeleteRecords durable (meta.db); nil in tests.
	persistLogStartOffset func(int64) error
	// onFlush observes each flush's duration (LogManagerOptions.OnFlush).
	onFlush func(time.Duration)
	// onTruncate lowers the LogCleaner's checkpoint to a truncation's new end
	// (LogCleanerManager.maybeTruncateCheckpoint); nil in tests.
	onTruncate func(int64)

	config atomic.Pointer[LogConfig]

	mu     sync.Mutex // serializes writers: append, roll, delete segments, close
	closed atomic.Bool

	segments       atomic.Pointer[[]*LogSegment] // immutable, ascending base offsets, never empty while open
	endOffset      atomic.Pointer[logOffsetMetadata]
	logStartOffset atomic.Int64

	hwMu          sync.Mutex // orders high watermark moves and watcher changes
	highWatermark atomic.Int64
	watchers      map[uint64]chan<- struct{}
	nextWatcher   uint64

	epochs *LeaderEpochFileCache

	producers     *idempotence.ProducerStateManager
	firstUnstable atomic.Int64 // first offset of the oldest open transaction, -1 if none

	// flushMu orders a flush's move of the recovery point with a truncation's:
	// a flush that began before a truncation must not set it past the new end.
	flushMu       sync.Mutex
	recoveryPoint atomic.Int64 // offsets below were fsynced
	lastFlushMs   atomic.Int64
	dirDirty      atomic.Bool // files were created or renamed since the directory was last synced
	// snapshotOffset is the offset of the newest producer state snapshot
	// on disk (0 without one): close writes another only if the log has
	// moved since, as Kafka's ProducerStateManager.takeSnapshot.
	snapshotOffset atomic.Int64
}

// logOffsetMetadata is an offset with the segment and byte position it falls at
// (Kafka LogOffsetMetadata); for the LEO, where the next batch will be written.
type logOffsetMetadata struct {
	offset      int64
	segmentBase int64
	position    int64
}

// LogAppendInfo describes a completed append (Kafka LogAppendInfo).
type LogAppendInfo struct {
	FirstOffset    int64 // base offset of the first batch
	LastOffset     int64 // last offset of the last batch
	LogAppendTime  int64 // ms stamped into the batches, -1 for CreateTime topics
	LogStartOffset int64
	RecordCount    int32
	// Duplicate: the batch repeats one of its producer's last five, which is
	// answered with the original offsets and was not appended again.
	Duplicate bool
}

// FetchDataInfo is the result of Read (Kafka FetchDataInfo): whole batches, ready to be
// sent with FileRegion.SendTo. The caller must Release Records.
type FetchDataInfo struct {
	Records     FileRegion
	FirstOffset int64 // base offset of the first batch returned, -1 if empty
	// LastOffset is the last offset of the last batch returned, -1 if empty.
	// LastOffset-FirstOffset+1 is the offsets the batches span, a record count
	// read from batch headers only.
	LastOffset int64
}

// Topic is the topic this partition belongs to.
func (l *Log) Topic() string { return l.topic }

// Partition is the partition number.
func (l *Log) Partition() int32 { return l.partition }

// Config is the effective LogConfig, updated in place by LogManager.SetTopicConfig.
func (l *Log) Config() LogConfig { return *l.config.Load() }

func (l *Log) setConfig(c LogConfig) { l.config.Store(&c) }

// LogStartOffset is the first offset that may be read.
func (l *Log) LogStartOffset() int64 { return l.logStartOffset.Load() }

// LogEndOffset is the offset the next appended record will get.
func (l *Log) LogEndOffset() int64 { return l.endOffset.Load().offset }

// HighWatermark is the end (exclusive) of the committed records consumers may read.
func (l *Log) HighWatermark() int64 { return l.highWatermark.Load() }

// LastStableOffset is the end (exclusive) of what read_committed consumers may read:
// the high watermark, held back to the start of the oldest open transaction.
func (l *Log) LastStableOffset() int64 {
	hw := l.HighWatermark()
	if fu := l.firstUnstable.Load(); fu >= 0 && fu < hw {
		return fu
	}
	return hw
}

// Size is the number of bytes in all segment files.
func (l *Log) Size() int64 {
	var n int64
	for _, s := range *l.segments.Load() {
		n += s.size()
	}
	return n
}

// NumSegments is the number of segments.
func (l *Log) NumSegments() int { return len(*l.segments.Load()) }

func (l *Log) activeSegment() *LogSegment {
	segs := *l.segments.Load()
	return segs[len(segs)-1]
}

// UpdateHighWatermark sets the high watermark, clamped to [LogStartOffset,
// LogEndOffset], and wakes the watchers if it moved (Kafka
// UnifiedLog.updateHighWatermark + the delayed-fetch purgatory's checkAndComplete).
// It reports whether a watcher was signalled that had no signal pending.
//
// It waits for an append in progress (mu), as Kafka's
// maybeIncrementHighWatermark takes the log's lock: readers see a batch as
// soon as it is written, before its producer state is recorded, so a
// follower may fetch it and report it back while an open transaction's
// first offset is not yet in firstUnstable. A high watermark moved past the
// batch then would let the last stable offset expose that transaction.
func (l *Log) UpdateHighWatermark(hw int64) (woke bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hwMu.Lock()
	defer l.hwMu.Unlock()
	hw = min(max(hw, l.LogStartOffset()), l.LogEndOffset())
	if l.highWatermark.Swap(hw) != hw {
		return l.notifyLocked()
	}
	return false
}

// Watch registers ch to receive a non-blocking send after every high watermark move
// and when the log is closed; the long-poll Fetch purgatory waits on it. Use a
// buffered channel (capacity 1 is enough: a pending signal is not repeated). cancel
// unregisters ch and may be called more than once.
func (l *Log) Watch(ch chan<- struct{}) (cancel func()) {
	l.hwMu.Lock()
	id := l.nextWatcher
	l.nextWatcher++
	if l.watchers == nil {
		l.watchers = make(map[uint64]chan<- struct{})
	}
	l.watchers[id] = ch
	l.hwMu.Unlock()
	if l.closed.Load() {
		notify(ch)
	}
	return func() {
		l.hwMu.Lock()
		delete(l.watchers, id)
		l.hwMu.Unlock()
	}
}

// notifyLocked signals every watcher and reports whether one had no signal
// pending.
func (l *Log) notifyLocked() (woke bool) {
	for _, ch := range l.watchers {
		woke = notify(ch) || woke
	}
	return woke
}

// notify makes a non-blocking send on ch and reports whether it was taken.
func notify(ch chan<- struct{}) bool {
	select {
	case ch <- struct{}{}:
		return true
	default:
		return false
	}
}

// analyzeBatches splits records into its batches and checks what the offsets and the
// segment layout depend on (UnifiedLog.analyzeAndValidateRecords, LogValidator's
// batch checks): whole v2 batches, no larger than max.message.bytes, each with
// LastOffsetDelta == RecordCount-1 so a batch cannot claim a range of offsets it has
// no records for. It returns the batch sizes and the number of records (= offsets)
// they take. A follower copies batches the leader's LogCleaner may have emptied
// or thinned (compacted): they keep their offset range with fewer records, or
// none, so with compacted a batch may hold fewer records than offsets.
func analyzeBatches(records []byte, maxMessageBytes int32, compacted bool) (sizes []int, count int64, err error) {
	if len(records) == 0 {
		return nil, 0, fmt.Errorf("%w: no record batches", ErrCorruptRecord)
	}
	for pos := 0; pos < len(records); {
		h, err := ParseBatchHeader(records[pos:])
		if err != nil {
			return nil, 0, err
		}
		size := h.Size()
		if size > len(records)-pos {
			return nil, 0, fmt.Errorf("%w: batch of %d bytes, %d left", ErrCorruptRecord, size, len(records)-pos)
		}
		if size > int(maxMessageBytes) {
			return nil, 0, fmt.Errorf("%w: batch of %d bytes exceeds max.message.bytes %d", ErrRecordTooLarge, size, maxMessageBytes)
		}
		if compacted {
			if h.RecordCount < 0 || h.LastOffsetDelta < 0 || int64(h.RecordCount) > int64(h.LastOffsetDelta)+1 {
				return nil, 0, fmt.Errorf("%w: record count %d does not fit last offset delta %d", ErrCorruptRecord, h.RecordCount, h.LastOffsetDelta)
			}
		} else if h.RecordCount <= 0 || h.LastOffsetDelta != h.RecordCount-1 {
			return nil, 0, fmt.Errorf("%w: record count %d does not match last offset delta %d", ErrCorruptRecord, h.RecordCount, h.LastOffsetDelta)
		}
		sizes = append(sizes, size)
		count += int64(h.LastOffsetDelta) + 1
		pos += size
	}
	return sizes, count, nil
}

// AppendAsLeader appends one or more whole RecordBatches (Kafka
// UnifiedLog.appendAsLeader). The caller has validated them (magic 2, CRC, base offset
// 0); storage re-checks only what its own bookkeeping depends on.
//
// Batches of idempotent producers are checked against the producer state first: a
// retry of a recent batch is not appended but answered with the original offsets
// (Duplicate), and a sequence gap or an old epoch is an idempotence error.
//
// In place in records, each batch gets its BaseOffset (the next offset) and
// PartitionLeaderEpoch; neither is covered by the CRC. For a LogAppendTime topic the
// timestamp type bit is set and MaxTimestamp becomes now, and the CRC is recomputed.
// The active segment is rolled first if the append would not fit it (segment.bytes,
// segment.ms, index full, relative offsets), then the bytes go out in one write.
// A new leaderEpoch is recorded in the leader epoch cache. With flush.messages
// reached, the log is fsynced before returning.
//
// The high watermark does not move: the caller advances it with UpdateHighWatermark
// once the append is committed (on a single broker, at once, to LastOffset+1).
func (l *Log) AppendAsLeader(records []byte, leaderEpoch int32) (LogAppendInfo, error) {
	cfg := l.Config()
	sizes, count, err := analyzeBatches(records, cfg.MaxMessageBytes, false)
	if err != nil {
		return LogAppendInfo{}, err
	}
	if int64(len(records)) > cfg.SegmentBytes {
		return LogAppendInfo{}, fmt.Errorf("%w: append of %d bytes exceeds segment.bytes %d", ErrRecordTooLarge, len(records), cfg.SegmentBytes)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return LogAppendInfo{}, ErrClosed
	}
	pbs, dup, err := l.checkProducerBatches(records, sizes, cfg)
	if err != nil {
		return LogAppendInfo{}, err
	}
	if dup != nil {
		return *dup, nil
	}
	info, err := l.appendLocked(records, sizes, count, leaderEpoch, true, cfg)
	if err != nil {
		return info, err
	}
	if len(pbs) > 0 {
		l.producers.Lock()
		for _, b := range pbs {
			// The batch's offsets are only known now.
			b.LastOffset = info.FirstOffset + b.LastOffset
			b.FirstOffset = info.FirstOffset + b.FirstOffset
			l.producers.Update(b)
		}
		l.firstUnstable.Store(l.producers.FirstUnstableOffset())
		l.producers.Unlock()
	}
	return info, l.flushIfMessagesDue(info, cfg)
}

// AppendAsFollower appends batches fetched from the partition leader, as they
// are (Kafka UnifiedLog.appendAsFollower): their base offsets and
// PartitionLeaderEpochs were assigned by the leader and are kept, and so are
// LogAppendTime stamps. The bytes crossed the network, so all of them are
// checked before anything is written: whole v2 batches with matching
// CRC-32C, record counts that fit their offsets, no batch above
// max.message.bytes or segment.bytes, and offsets that grow from batch to
// batch. A leader's LogCleaner leaves gaps between batches and thins or
// empties batches (their offset range stays), so the follower accepts both,
// as Kafka's does: each replica compacts its own copy. Batches wholly below
// the log end offset are already present and skipped; the first one appended
// must start at or after the log end offset. Otherwise the append is refused
// with ErrUnexpectedAppendOffset and the log is unchanged.
//
// There are no sequence checks (the leader made them) but the producer state
// is updated as recovery replays it, so that this replica, once leader,
// answers retries and knows the open transactions: markers close
// transactions, aborts go to the TransactionIndex, and the last stable offset
// follows. Segments roll and indexes grow as for a leader's append; an append
// larger than segment.bytes is written in several parts, each of which rolls
// as needed. The high watermark does not move: the caller sets it from the
// leader's. With nothing new, the result has FirstOffset and LastOffset -1.
func (l *Log) AppendAsFollower(records []byte) (LogAppendInfo, error) {
	cfg := l.Config()
	sizes, _, err := analyzeBatches(records, cfg.MaxMessageBytes, true)
	if err != nil {
		return LogAppendInfo{}, err
	}
	headers := make([]BatchHeader, len(sizes))
	for i, pos := 0, 0; i < len(sizes); pos, i = pos+sizes[i], i+1 {
		b := records[pos : pos+sizes[i]]
		if err := VerifyBatchCRC(b); err != nil {
			return LogAppendInfo{}, err
		}
		if int64(len(b)) > cfg.SegmentBytes {
			return LogAppendInfo{}, fmt.Errorf("%w: batch of %d bytes exceeds segment.bytes %d", ErrRecordTooLarge, len(b), cfg.SegmentBytes)
		}
		h, _ := ParseBatchHeader(b)
		if h.BaseOffset < 0 || h.LastOffset() < h.BaseOffset {
			return LogAppendInfo{}, fmt.Errorf("%w: batch offsets [%d, %d]", ErrCorruptRecord, h.BaseOffset, h.LastOffset())
		}
		// Offsets grow; a compacted leader's batches leave gaps between them.
		if i > 0 && h.BaseOffset <= headers[i-1].LastOffset() {
			return LogAppendInfo{}, &UnexpectedAppendOffsetError{FirstOffset: h.BaseOffset, LastOffset: h.LastOffset(), LogEndOffset: headers[i-1].LastOffset() + 1}
		}
		headers[i] = h
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return LogAppendInfo{}, ErrClosed
	}
	leo := l.LogEndOffset()
	skip, pos := 0, 0
	for skip < len(headers) && headers[skip].LastOffset() < leo {
		pos += sizes[skip]
		skip++
	}
	if skip == len(headers) {
		return LogAppendInfo{FirstOffset: -1, LastOffset: -1, LogAppendTime: -1, LogStartOffset: l.LogStartOffset()}, nil
	}
	if h := headers[skip]; h.BaseOffset < leo {
		// Starting past the log end is fine: the leader cleaned the offsets between.
		return LogAppendInfo{}, &UnexpectedAppendOffsetError{FirstOffset: h.BaseOffset, LastOffset: h.LastOffset(), LogEndOffset: leo}
	}
	records, sizes, headers = records[pos:], sizes[skip:], headers[skip:]

	result := LogAppendInfo{FirstOffset: leo, LastOffset: -1, LogAppendTime: -1}
	for len(sizes) > 0 {
		// As many batches as fit one segment, bytes and relative offsets: each
		// part may roll.
		n, partBytes := 0, 0
		for n < len(sizes) && int64(partBytes+sizes[n]) <= cfg.SegmentBytes &&
			headers[n].LastOffset()-headers[0].BaseOffset <= math.MaxInt32 {
			partBytes += sizes[n]
			n++
		}
		last := headers[n-1].LastOffset()
		info, err := l.appendLocked(records[:partBytes], sizes[:n], last-l.LogEndOffset()+1, -1, false, cfg)
		if err != nil {
			return LogAppendInfo{}, err
		}
		seg := l.activeSegment()
		l.producers.Lock()
		for i, at := 0, 0; i < n && err == nil; at, i = at+sizes[i], i+1 {
			b := records[at : at+sizes[i]]
			err = l.replayBatch(seg, headers[i], func() ([]byte, error) { return b, nil })
		}
		fu := l.producers.FirstUnstableOffset()
		l.producers.Unlock()
		l.firstUnstable.Store(fu)
		if err != nil {
			return LogAppendInfo{}, err
		}
		result.LastOffset = info.LastOffset
		result.RecordCount = int32(min(int64(result.RecordCount)+int64(info.RecordCount), math.MaxInt32))
		records, sizes, headers = records[partBytes:], sizes[n:], headers[n:]
	}
	result.LogStartOffset = l.LogStartOffset()
	return result, l.flushIfMessagesDue(result, cfg)
}

// checkProducerBatches applies the idempotent producer checks to the batches of
// an append (UnifiedLog.analyzeAndValidateProducerState): a retry of one of the
// producer's last five batches is answered with the original offsets (dup), a
// gap or an old epoch is an error. It returns the producer batches to record
// after the append, with offsets relative to the append's first offset. Like
// Kafka's clients, a producer sends one batch per partition and request; two
// of one producer in one append are checked against the state before it.
func (l *Log) checkProducerBatches(records []byte, sizes []int, cfg LogConfig) ([]idempotence.Batch, *LogAppendInfo, error) {
	var pbs []idempotence.Batch
	rel := int64(0)
	for i, pos := 0, 0; i < len(sizes); pos, i = pos+sizes[i], i+1 {
		h, _ := ParseBatchHeader(records[pos:]) // analyzeBatches parsed it already
		first := rel
		rel += int64(h.LastOffsetDelta) + 1
		if h.ProducerID < 0 {
			continue
		}
		b := idempotenceBatch(h)
		b.FirstOffset, b.LastOffset = first, rel-1
		l.producers.Lock()
		dup, err := l.producers.Check(b)
		l.producers.Unlock()
		if err != nil {
			return nil, nil, err
		}
		if dup != nil {
			info := &LogAppendInfo{
				FirstOffset: dup.FirstOffset, LastOffset: dup.LastOffset, LogAppendTime: -1,
				LogStartOffset: l.LogStartOffset(), RecordCount: int32(dup.LastOffset - dup.FirstOffset + 1), Duplicate: true,
			}
			if cfg.logAppendTime() {
				info.LogAppendTime = dup.Timestamp
			}
			return nil, info, nil
		}
		if b.MaxTimestamp < 0 || cfg.logAppendTime() {
			b.MaxTimestamp = l.now().UnixMilli() // idle expiry counts from the append
		}
		pbs = append(pbs, b)
	}
	return pbs, nil, nil
}

// AppendTxnMarker writes a transaction's COMMIT or ABORT marker (Kafka
// UnifiedLog.appendAsLeader with a control batch from the coordinator). It
// closes the producer's transaction here, which moves the last stable offset,
// and records an abort in the TransactionIndex of the segment the marker
// lands in. A marker for a producer with no open transaction is appended all
// the same (a coordinator retry after a restart) but changes nothing else.
func (l *Log) AppendTxnMarker(m EndTxnMarker, leaderEpoch int32) (LogAppendInfo, error) {
	cfg := l.Config()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return LogAppendInfo{}, ErrClosed
	}
	nowMs := l.now().UnixMilli()
	mk := idempotence.Marker{
		ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, CoordinatorEpoch: m.CoordinatorEpoch,
		Commit: m.Commit, Offset: l.LogEndOffset(), Timestamp: nowMs,
	}
	l.producers.Lock()
	err := l.producers.CheckMarker(mk)
	l.producers.Unlock()
	if err != nil {
		return LogAppendInfo{}, err
	}
	records := encodeEndTxnMarker(m, nowMs)
	info, err := l.appendLocked(records, []int{len(records)}, 1, leaderEpoch, true, cfg)
	if err != nil {
		return info, err
	}
	l.producers.Lock()
	err = l.completeTxn(l.activeSegment(), mk)
	fu := l.producers.FirstUnstableOffset()
	l.producers.Unlock()
	l.firstUnstable.Store(fu)
	if err != nil {
		return info, err
	}
	return info, l.flushIfMessagesDue(info, cfg)
}

// completeTxn applies a marker written at mk.Offset into seg: it closes the
// producer's transaction and, for an abort, adds the TransactionIndex entry
// unless the index has it already (recovery replays markers whose entries
// survived). Leaders, followers and recovery all come here. The caller stores
// the new first unstable offset afterwards: a read_committed fetch that sees
// the new LSO (up to the high watermark, which may already lie past the
// aborted records) must see the entry that tells it to drop them. Call with
// the producer state locked.
func (l *Log) completeTxn(seg *LogSegment, mk idempotence.Marker) error {
	done, ok := l.producers.CompleteTxn(mk)
	if !ok || !done.IsAborted || done.LastOffset <= seg.txnIndex.lastOffset() {
		return nil
	}
	if err := seg.txnIndex.append(abortedTxn(done, l.producers.FirstUnstableOffset())); err != nil {
		return fmt.Errorf("storage: transaction index of %s: %w", l.name(), err)
	}
	return nil
}

// replayBatch applies a batch that is in seg to the producer state without
// any check, the log being the truth (recovery, and a follower, which trusts
// its leader): a data batch through Replay, a transaction marker through
// completeTxn. readBatch supplies the whole batch, needed for control batches
// only. Call with the producer state locked.
func (l *Log) replayBatch(seg *LogSegment, h BatchHeader, readBatch func() ([]byte, error)) error {
	if h.ProducerID < 0 {
		return nil
	}
	if !h.IsControl() {
		l.producers.Replay(idempotenceBatch(h))
		return nil
	}
	batch, err := readBatch()
	if err != nil {
		return err
	}
	m, err := DecodeEndTxnMarker(batch)
	if err != nil {
		return nil // a control record that is not a transaction marker
	}
	return l.completeTxn(seg, idempotence.Marker{
		ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, CoordinatorEpoch: m.CoordinatorEpoch,
		Commit: m.Commit, Offset: h.BaseOffset, Timestamp: h.MaxTimestamp,
	})
}

// idempotenceBatch is what the producer state needs of a data batch header.
func idempotenceBatch(h BatchHeader) idempotence.Batch {
	return idempotence.Batch{
		ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch,
		BaseSequence: h.BaseSequence, LastSequence: idempotence.LastSeq(h.BaseSequence, h.LastOffsetDelta),
		FirstOffset: h.BaseOffset, LastOffset: h.LastOffset(), MaxTimestamp: h.MaxTimestamp,
		IsTransactional: h.IsTransactional(),
	}
}

// abortedTxn is the index entry of an aborted transaction; firstUnstable is
// the partition's first unstable offset once it is closed (-1: none).
func abortedTxn(t idempotence.CompletedTxn, firstUnstable int64) AbortedTxn {
	lso := t.LastOffset + 1
	if firstUnstable >= 0 {
		lso = firstUnstable
	}
	return AbortedTxn{ProducerID: t.ProducerID, FirstOffset: t.FirstOffset, LastOffset: t.LastOffset, LastStableOffset: lso}
}

// appendLocked writes whole, analyzed batches at the log end offset. Called
// with mu held. With assignOffsets (a leader's append) each batch is stamped
// as AppendAsLeader describes and leaderEpoch is recorded at the first offset;
// without (a follower's, UnifiedLog.append with validateAndAssignOffsets
// false) the bytes are written as they are, and each batch whose
// PartitionLeaderEpoch is newer than the cache's latest starts that epoch.
func (l *Log) appendLocked(records []byte, sizes []int, count int64, leaderEpoch int32, assignOffsets bool, cfg LogConfig) (LogAppendInfo, error) {
	var err error
	nowMs := l.now().UnixMilli()
	first := l.LogEndOffset()
	last := first + count - 1

	seg := l.activeSegment()
	if seg.shouldRoll(cfg, int64(len(records)), last, nowMs) {
		if seg, err = l.roll(); err != nil {
			return LogAppendInfo{}, err
		}
	}
	if !seg.canConvertToRelativeOffset(last) {
		return LogAppendInfo{}, fmt.Errorf("%w: append spans %d offsets", ErrRecordTooLarge, count)
	}

	info := LogAppendInfo{FirstOffset: first, LastOffset: last, LogAppendTime: -1, RecordCount: int32(min(count, math.MaxInt32))}
	logAppendTime := assignOffsets && cfg.logAppendTime()
	if logAppendTime {
		info.LogAppendTime = nowMs
	}
	batches := make([]appendBatch, len(sizes))
	next := first
	for i, pos := 0, 0; i < len(sizes); i++ {
		b := records[pos : pos+sizes[i]]
		if assignOffsets {
			binary.BigEndian.PutUint64(b[baseOffsetOffset:], uint64(next))
			binary.BigEndian.PutUint32(b[partitionLeaderEpochOffset:], uint32(leaderEpoch))
		}
		if logAppendTime {
			attrs := binary.BigEndian.Uint16(b[attributesOffset:]) | timestampTypeMask
			binary.BigEndian.PutUint16(b[attributesOffset:], attrs)
			binary.BigEndian.PutUint64(b[maxTimestampOffset:], uint64(nowMs))
			setBatchCRC(b)
		}
		lastOffsetDelta := int64(int32(binary.BigEndian.Uint32(b[lastOffsetDeltaOffset:])))
		batches[i] = appendBatch{
			size:         int64(sizes[i]),
			lastOffset:   next + lastOffsetDelta,
			maxTimestamp: int64(binary.BigEndian.Uint64(b[maxTimestampOffset:])),
		}
		next += lastOffsetDelta + 1
		pos += sizes[i]
	}

	if err := seg.append(records, batches, cfg.IndexIntervalBytes, nowMs); err != nil {
		return LogAppendInfo{}, fmt.Errorf("storage: append to %s: %w", l.name(), err)
	}
	l.endOffset.Store(&logOffsetMetadata{offset: last + 1, segmentBase: seg.baseOffset, position: seg.size()})

	epochsChanged := false
	if assignOffsets {
		epochsChanged = leaderEpoch >= 0 && l.epochs.assign(leaderEpoch, first)
	} else {
		for i, pos := 0, 0; i < len(sizes); pos, i = pos+sizes[i], i+1 {
			e := int32(binary.BigEndian.Uint32(records[pos+partitionLeaderEpochOffset:]))
			if e >= 0 && e > l.epochs.latestEpoch() {
				base := int64(binary.BigEndian.Uint64(records[pos+baseOffsetOffset:]))
				epochsChanged = l.epochs.assign(e, base) || epochsChanged
			}
		}
	}
	if epochsChanged {
		if err := l.epochs.flush(); err != nil {
			// The append stands; the cache is retried on the next flush or close.
			l.logger.Error("writing leader epoch checkpoint", "log", l.name(), "err", err)
		}
	}
	info.LogStartOffset = l.LogStartOffset()
	return info, nil
}

// flushIfMessagesDue fsyncs once flush.messages records are unflushed.
func (l *Log) flushIfMessagesDue(info LogAppendInfo, cfg LogConfig) error {
	if info.LastOffset+1-l.recoveryPoint.Load() >= cfg.FlushMessages {
		if err := l.flush(); err != nil {
			return fmt.Errorf("storage: flush %s: %w", l.name(), err)
		}
	}
	return nil
}

// roll closes the active segment to appends and starts a new one at the log end
// offset (LocalLog.roll). Called with mu held, on a non-empty active segment.
func (l *Log) roll() (*LogSegment, error) {
	leo := l.LogEndOffset()
	old := *l.segments.Load()
	active := old[len(old)-1]
	if active.size() == 0 {
		return active, nil
	}
	seg, err := createSegment(l.dir, leo)
	if err != nil {
		return nil, fmt.Errorf("storage: roll %s: %w", l.name(), err)
	}
	active.onBecomeInactive()
	segs := append(append(make([]*LogSegment, 0, len(old)+1), old...), seg)
	// Segments first, then the end offset that points into the new one: a reader that
	// sees the new end offset also sees the new segment.
	l.segments.Store(&segs)
	l.endOffset.Store(&logOffsetMetadata{offset: leo, segmentBase: leo})
	l.dirDirty.Store(true)
	// Recovery replays the producer state from the newest snapshot: one per roll
	// bounds that to the active segment (UnifiedLog.roll).
	if err := l.producers.WriteSnapshot(l.dir, leo); err != nil {
		l.logger.Warn("writing producer snapshot", "log", l.name(), "offset", leo, "err", err)
	} else {
		l.snapshotOffset.Store(leo)
	}
	l.logger.Debug("rolled segment", "log", l.name(), "base_offset", leo)
	return seg, nil
}

// Read returns whole batches starting with the one that holds offset, at most
// maxBytes of them, all ending below maxOffset (exclusive: the caller passes the high
// watermark or the last stable offset). With minOneMessage, a first batch larger than
// maxBytes is returned alone (KIP-74) instead of nothing. Like Kafka, a read comes
// from one segment only. Reading at LogEndOffset, or at or past maxOffset, gives an
// empty result; an offset below LogStartOffset or above LogEndOffset is
// ErrOffsetOutOfRange. The bytes are not copied: the caller sends and then releases
// the FileRegion (UnifiedLog.read / LocalLog.read).
func (l *Log) Read(offset int64, maxBytes int32, maxOffset int64, minOneMessage bool) (FetchDataInfo, error) {
	for {
		info, err := l.read(offset, maxBytes, maxOffset, minOneMessage)
		if err != errSegmentsChanged {
			return info, err
		}
	}
}

func (l *Log) read(offset int64, maxBytes int32, maxOffset int64, minOneMessage bool) (FetchDataInfo, error) {
	empty := FetchDataInfo{FirstOffset: -1, LastOffset: -1}
	if l.closed.Load() {
		return empty, ErrClosed
	}
	// Load order matters: log start offset, then segments, then end offset. A
	// concurrent retention publishes segments before the start offset, and an append
	// publishes its end offset after the segments.
	lso := l.LogStartOffset()
	list := l.segments.Load()
	segs := *list
	leo := *l.endOffset.Load()
	if offset < lso || offset > leo.offset {
		return empty, fmt.Errorf("%w: offset %d not in [%d, %d] of %s", ErrOffsetOutOfRange, offset, lso, leo.offset, l.name())
	}
	maxOffset = min(maxOffset, leo.offset)
	if offset >= maxOffset {
		return empty, nil
	}
	i := sort.Search(len(segs), func(i int) bool { return segs[i].baseOffset > offset }) - 1
	if i < 0 {
		// The segment holding offset was deleted after we read the start offset.
		return empty, fmt.Errorf("%w: offset %d was deleted from %s", ErrOffsetOutOfRange, offset, l.name())
	}
	for ; i < len(segs) && segs[i].baseOffset <= leo.segmentBase; i++ {
		seg := segs[i]
		maxPos := seg.size()
		if seg.baseOffset == leo.segmentBase {
			maxPos = leo.position
		}
		if err := l.acquire(seg, list); err != nil {
			if err == errSegmentGone {
				err = fmt.Errorf("%w: offset %d was deleted from %s", ErrOffsetOutOfRange, offset, l.name())
			}
			return empty, err
		}
		region, first, last, found, err := seg.read(offset, maxBytes, maxPos, maxOffset, minOneMessage)
		seg.log.release()
		if err != nil {
			return empty, err
		}
		if found {
			return FetchDataInfo{Records: region, FirstOffset: first, LastOffset: last}, nil
		}
	}
	return empty, nil
}

// OffsetForTimestamp finds the first record whose timestamp is >= ts (ListOffsets by
// timestamp; UnifiedLog.fetchOffsetByTimestamp). It searches the first segment whose
// largest timestamp reaches ts, and the later ones if that segment's candidates are all
// below the log start offset. ok is false when no record qualifies. The caller
// filters results at or past the high watermark (or LSO), as Kafka's Partition does.
func (l *Log) OffsetForTimestamp(ts int64) (offset int64, timestamp int64, ok bool, err error) {
	for {
		offset, timestamp, ok, err = l.offsetForTimestamp(ts)
		if err != errSegmentsChanged {
			return offset, timestamp, ok, err
		}
	}
}

func (l *Log) offsetForTimestamp(ts int64) (offset int64, timestamp int64, ok bool, err error) {
	if l.closed.Load() {
		return 0, 0, false, ErrClosed
	}
	lso := l.LogStartOffset()
	list := l.segments.Load()
	segs := *list
	leo := *l.endOffset.Load()
	for _, seg := range segs {
		if seg.baseOffset > leo.segmentBase {
			break
		}
		if maxTs, _ := seg.maxTimestampSoFar(); maxTs < ts {
			continue
		}
		maxPos := seg.size()
		if seg.baseOffset == leo.segmentBase {
			maxPos = leo.position
		}
		if err := l.acquire(seg, list); err == errSegmentGone {
			continue // deleted meanwhile: its records are below the log start offset now
		} else if err != nil {
			return 0, 0, false, err
		}
		offset, timestamp, ok, err = seg.findOffsetByTimestamp(ts, lso, maxPos)
		seg.log.release()
		if err != nil || ok {
			return offset, timestamp, ok, err
		}
	}
	return 0, 0, false, nil
}

// OffsetOfMaxTimestamp returns the first record carrying the log's largest timestamp
// (ListOffsets MAX_TIMESTAMP, KIP-734). ok is false when the log has no records with a
// timestamp.
func (l *Log) OffsetOfMaxTimestamp() (offset int64, timestamp int64, ok bool, err error) {
	for {
		offset, timestamp, ok, err = l.offsetOfMaxTimestamp()
		if err != errSegmentsChanged {
			return offset, timestamp, ok, err
		}
	}
}

func (l *Log) offsetOfMaxTimestamp() (offset int64, timestamp int64, ok bool, err error) {
	if l.closed.Load() {
		return 0, 0, false, ErrClosed
	}
	list := l.segments.Load()
	segs := *list
	leo := *l.endOffset.Load()
	var best *LogSegment
	bestTs := int64(noTimestamp)
	for _, seg := range segs {
		if seg.baseOffset > leo.segmentBase {
			break
		}
		if ts, _ := seg.maxTimestampSoFar(); ts > bestTs {
			best, bestTs = seg, ts
		}
	}
	if best == nil {
		return 0, 0, false, nil
	}
	maxPos := best.size()
	if best.baseOffset == leo.segmentBase {
		maxPos = leo.position
	}
	if err := l.acquire(best, list); err == errSegmentGone {
		return 0, 0, false, nil
	} else if err != nil {
		return 0, 0, false, err
	}
	defer best.log.release()
	return best.findOffsetOfMaxTimestamp(maxPos)
}

// errSegmentGone: a segment's file was let go of while its log's segment list
// still holds it (a deletion in progress). Its records are gone.
var errSegmentGone = errors.New("storage: segment deleted")

// acquire takes a reference on seg's file, seg having been picked from list.
// A file let go of since is errSegmentsChanged when the log's list is another
// one now (a cleaner swap, a retention: the caller loads the log again, which
// terminates as each retry needs a new list), errSegmentGone when it is not.
func (l *Log) acquire(seg *LogSegment, list *[]*LogSegment) error {
	switch {
	case seg.log.tryAcquire():
		return nil
	case l.closed.Load():
		return ErrClosed
	case l.segments.Load() != list:
		return errSegmentsChanged
	}
	return errSegmentGone
}

// DeleteRecordsBefore moves the log start offset up to offset (Kafka DeleteRecords,
// UnifiedLog.maybeIncrementLogStartOffset): offset must be in [0, HighWatermark], else
// ErrOffsetOutOfRange. The new start is durable before it returns; segments wholly
// below it are deleted. A lower offset changes nothing. It returns the log start
// offset.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	if offset < 0 || offset > l.HighWatermark() {
		return 0, fmt.Errorf("%w: delete records before %d, high watermark %d of %s", ErrOffsetOutOfRange, offset, l.HighWatermark(), l.name())
	}
	if offset <= l.LogStartOffset() {
		return l.LogStartOffset(), nil
	}
	if l.persistLogStartOffset != nil {
		if err := l.persistLogStartOffset(offset); err != nil {
			return 0, fmt.Errorf("storage: persist log start offset of %s: %w", l.name(), err)
		}
	}
	l.logStartOffset.Store(offset)
	l.truncateEpochsFromStart()
	l.producers.TruncateBefore(offset)
	_, err := l.deleteOldSegments(func(_, next *LogSegment) bool {
		return next != nil && next.baseOffset <= offset
	}, "log start offset breach")
	return l.LogStartOffset(), err
}

// TruncateTo cuts the log back so that it ends at offset (Kafka
// UnifiedLog.truncateTo), which a follower does where its log diverges from a
// new leader's (OffsetForLeaderEpoch, KIP-101/279). An offset inside a batch
// cuts before that batch: the log keeps whole batches, and ends at or below
// offset. Nothing happens for offset >= LogEndOffset. An offset below
// LogStartOffset (or a cut there) empties the log as TruncateFullyAndStartAt.
//
// Segments above the cut are deleted (renamed .deleted, removed once no
// FileRegion uses them), the one holding it is cut and its indexes rebuilt,
// including its TransactionIndex; the leader epoch cache is cut from the end,
// the high watermark and the recovery point go down to the new end, and the
// producer state is rebuilt as at start-up (the newest snapshot at or below
// the cut, the batches after it), with the last stable offset following. New
// reads stop at the new end before any byte goes. A crash at any point leaves
// what recovery turns into a prefix of the log as it was; an I/O error in the
// middle leaves a log that only a restart (recovery) makes whole again.
func (l *Log) TruncateTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if offset >= l.LogEndOffset() {
		return nil
	}
	if offset < l.LogStartOffset() {
		return l.truncateFullyAndStartAt(offset)
	}
	cfg := l.Config()
	segs := *l.segments.Load()
	// The first segment starts at or below the log start offset, so i >= 0.
	i := sort.Search(len(segs), func(i int) bool { return segs[i].baseOffset > offset }) - 1
	seg := segs[i]
	pos, h, found, err := seg.translateOffset(offset, seg.size())
	if err == nil && !found {
		err = fmt.Errorf("%w: no batch holds offset %d below the log end", ErrCorruptRecord, offset)
	}
	if err != nil {
		return fmt.Errorf("storage: truncate %s to %d: %w", l.name(), offset, err)
	}
	cut := h.BaseOffset
	if cut < l.LogStartOffset() {
		// DeleteRecords left the log start inside the batch being cut.
		return l.truncateFullyAndStartAt(cut)
	}

	// Hide what goes, then let it go: end offset before segments, as a reader
	// that sees the new end must find its segment in whatever list it loads.
	l.lowerHighWatermark(cut)
	l.endOffset.Store(&logOffsetMetadata{offset: cut, segmentBase: seg.baseOffset, position: pos})
	kept := slices.Clone(segs[:i+1])
	l.segments.Store(&kept)
	l.lowerHighWatermark(cut) // again: an UpdateHighWatermark may have read the old end
	var errs []error
	for j := len(segs) - 1; j > i; j-- { // from the top, so a crash leaves a prefix
		errs = append(errs, segs[j].delete())
	}
	if _, err := seg.truncateTo(offset, cfg.IndexIntervalBytes, l.now().UnixMilli()); err != nil {
		return fmt.Errorf("storage: truncate %s to %d: %w", l.name(), offset, err)
	}
	l.dirDirty.Store(true)
	// The cache after the log: a crash in between leaves entries past the end,
	// which recovery cuts, never batches whose epoch the cache lacks.
	l.epochs.truncateFromEnd(cut)
	if err := l.epochs.flush(); err != nil {
		l.logger.Error("writing leader epoch checkpoint", "log", l.name(), "err", err)
	}
	l.lowerRecoveryPoint(cut)
	if err := l.loadProducerState(true); err != nil {
		errs = append(errs, fmt.Errorf("storage: rebuilding producer state of %s: %w", l.name(), err))
	}
	if l.onTruncate != nil {
		l.onTruncate(cut)
	}
	l.logger.Info("truncated log", "log", l.name(), "offset", offset, "log_end_offset", cut, "segments_deleted", len(segs)-1-i)
	return errors.Join(errs...)
}

// TruncateFullyAndStartAt empties the log and starts it again, empty, at
// offset (Kafka UnifiedLog.truncateFullyAndStartAt): a follower does so when
// the offset it would fetch is below the leader's log start offset. Every
// segment is deleted (as retention deletes them) and an empty one made at
// offset; LogStartOffset, LogEndOffset and the high watermark become offset,
// and the log start offset is made durable as DeleteRecordsBefore does. The
// leader epoch cache, the producer state and its snapshots are cleared.
//
// Crash safety comes from the order: the epoch checkpoint and the producer
// snapshots go first (recovery rebuilds both from whatever segments are left),
// then the segments from the top down (a prefix stays), then the new segment,
// and the log start offset last (without it, recovery starts the empty log
// at the old one).
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	return l.truncateFullyAndStartAt(offset)
}

// truncateFullyAndStartAt is TruncateFullyAndStartAt with mu held.
func (l *Log) truncateFullyAndStartAt(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("%w: start %s at %d", ErrOffsetOutOfRange, l.name(), offset)
	}
	if err := l.epochs.clear(); err != nil {
		return err
	}
	idempotence.DeleteSnapshotsBefore(l.dir, math.MaxInt64)
	l.lowerHighWatermark(l.LogStartOffset()) // nothing is readable any more
	old := *l.segments.Load()
	var errs []error
	for i := len(old) - 1; i >= 0; i-- {
		errs = append(errs, old[i].delete())
	}
	seg, err := createSegment(l.dir, offset)
	if err != nil {
		return fmt.Errorf("storage: truncate %s fully: %w", l.name(), errors.Join(append(errs, err)...))
	}
	segs := []*LogSegment{seg}
	l.segments.Store(&segs)
	l.endOffset.Store(&logOffsetMetadata{offset: offset, segmentBase: offset})
	l.logStartOffset.Store(offset)
	l.hwMu.Lock()
	l.highWatermark.Store(offset)
	l.notifyLocked()
	l.hwMu.Unlock()
	l.flushMu.Lock()
	l.recoveryPoint.Store(offset)
	l.flushMu.Unlock()
	l.dirDirty.Store(true)
	if err := l.loadProducerState(true); err != nil { // no snapshot, no batch: an empty state
		errs = append(errs, err)
	}
	if l.persistLogStartOffset != nil {
		if err := l.persistLogStartOffset(offset); err != nil {
			errs = append(errs, fmt.Errorf("storage: persist log start offset of %s: %w", l.name(), err))
		}
	}
	if l.onTruncate != nil {
		l.onTruncate(offset)
	}
	l.logger.Info("truncated log fully", "log", l.name(), "log_start_offset", offset, "segments_deleted", len(old))
	return errors.Join(errs...)
}

// lowerHighWatermark moves the high watermark down to offset if it is above,
// waking the watchers.
func (l *Log) lowerHighWatermark(offset int64) {
	l.hwMu.Lock()
	defer l.hwMu.Unlock()
	if l.highWatermark.Load() > offset {
		l.highWatermark.Store(offset)
		l.notifyLocked()
	}
}

// lowerRecoveryPoint moves the recovery point down to offset if it is above.
func (l *Log) lowerRecoveryPoint(offset int64) {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if l.recoveryPoint.Load() > offset {
		l.recoveryPoint.Store(offset)
	}
}

// deleteOldSegments deletes segments from the oldest on while shouldDelete holds,
// none at or beyond the high watermark (UnifiedLog.deleteOldSegments /
// deletableSegments). If every segment goes, the active one is rolled first so the
// log keeps an empty active segment at its end offset. Called with mu held.
func (l *Log) deleteOldSegments(shouldDelete func(seg, next *LogSegment) bool, reason string) (int, error) {
	segs := *l.segments.Load()
	hw, leo := l.HighWatermark(), l.LogEndOffset()
	n := 0
	for i, seg := range segs {
		var next *LogSegment
		upper := leo
		if i+1 < len(segs) {
			next = segs[i+1]
			upper = next.baseOffset
		}
		if hw < upper || (next == nil && seg.size() == 0) || !shouldDelete(seg, next) {
			break
		}
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if n == len(segs) {
		if _, err := l.roll(); err != nil {
			return 0, err
		}
		segs = *l.segments.Load()
	}
	doomed := segs[:n]
	rest := append([]*LogSegment(nil), segs[n:]...)
	l.segments.Store(&rest)
	if first := rest[0].baseOffset; first > l.LogStartOffset() {
		l.logStartOffset.Store(first)
	}
	l.truncateEpochsFromStart()
	l.producers.TruncateBefore(l.LogStartOffset())
	idempotence.DeleteSnapshotsBefore(l.dir, rest[0].baseOffset)
	var errs []error
	for _, seg := range doomed {
		if err := seg.delete(); err != nil {
			errs = append(errs, err)
		}
	}
	l.dirDirty.Store(true)
	l.logger.Info("deleted segments", "log", l.name(), "count", n, "reason", reason, "log_start_offset", l.LogStartOffset())
	return n, errors.Join(errs...)
}

func (l *Log) truncateEpochsFromStart() {
	l.epochs.truncateFromStart(l.LogStartOffset())
	if err := l.epochs.flush(); err != nil {
		l.logger.Error("writing leader epoch checkpoint", "log", l.name(), "err", err)
	}
}

// deleteRetentionBreachedSegments applies retention (UnifiedLog.deleteOldSegments):
// segments wholly below the log start offset always go; with cleanup.policy delete,
// so do segments whose largest timestamp is older than retention.ms, and the oldest
// segments while the log stays at or above retention.bytes without them.
func (l *Log) deleteRetentionBreachedSegments() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return 0, nil
	}
	cfg := l.Config()
	lso := l.LogStartOffset()
	total, err := l.deleteOldSegments(func(_, next *LogSegment) bool {
		return next != nil && next.baseOffset <= lso
	}, "log start offset breach")
	if err != nil || !cfg.deleteEnabled() {
		return total, err
	}
	if cfg.RetentionMs >= 0 {
		nowMs := l.now().UnixMilli()
		n, err := l.deleteOldSegments(func(seg, _ *LogSegment) bool {
			return nowMs-seg.largestTimestamp() > cfg.RetentionMs
		}, "retention.ms breach")
		total += n
		if err != nil {
			return total, err
		}
	}
	if cfg.RetentionBytes >= 0 {
		if diff := l.Size() - cfg.RetentionBytes; diff >= 0 {
			n, err := l.deleteOldSegments(func(seg, _ *LogSegment) bool {
				if diff-seg.size() >= 0 {
					diff -= seg.size()
					return true
				}
				return false
			}, "retention.bytes breach")
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// Flush fsyncs every segment with unflushed writes, the leader epoch checkpoint and
// the directory, and moves the recovery point to the log end offset (UnifiedLog.flush).
func (l *Log) Flush() error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.flush()
}

func (l *Log) flush() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if l.onFlush != nil {
		began := time.Now()
		defer func() { l.onFlush(time.Since(began)) }()
	}
	leo := l.LogEndOffset()
	var errs []error
	for _, seg := range *l.segments.Load() {
		if seg.log.tryAcquire() {
			errs = append(errs, seg.flush())
			seg.log.release()
		}
	}
	errs = append(errs, l.epochs.flush(), l.syncDirIfDirty())
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for rp := l.recoveryPoint.Load(); rp < leo && !l.recoveryPoint.CompareAndSwap(rp, leo); rp = l.recoveryPoint.Load() {
	}
	l.lastFlushMs.Store(l.now().UnixMilli())
	return nil
}

// flushIfDue is the flush scheduler's tick (LogManager.flushDirtyLogs): a full flush
// when flush.ms has passed with unflushed messages; otherwise only segments that
// were rolled, which Kafka flushes in the background right after the roll.
func (l *Log) flushIfDue() error {
	if l.closed.Load() {
		return nil
	}
	cfg := l.Config()
	if cfg.FlushMs != math.MaxInt64 && l.now().UnixMilli()-l.lastFlushMs.Load() >= cfg.FlushMs &&
		l.LogEndOffset() > l.recoveryPoint.Load() {
		return l.flush()
	}
	segs := *l.segments.Load()
	var errs []error
	for _, seg := range segs[:len(segs)-1] {
		if seg.log.tryAcquire() {
			errs = append(errs, seg.flush())
			seg.log.release()
		}
	}
	errs = append(errs, l.syncDirIfDirty())
	return errors.Join(errs...)
}

func (l *Log) syncDirIfDirty() error {
	if !l.dirDirty.Swap(false) {
		return nil
	}
	if err := syncDir(l.dir); err != nil {
		l.dirDirty.Store(true)
		return err
	}
	return nil
}

// close flushes (if asked) and closes all segments; pending FileRegions stay
// readable. Watchers are woken so that waiting fetches notice.
func (l *Log) close(flush bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Swap(true) {
		return nil
	}
	segs := *l.segments.Load()
	segs[len(segs)-1].onBecomeInactive() // before the flush, so the entry is durable
	var errs []error
	if flush {
		errs = append(errs, l.flush())
		// The next start loads this instead of replaying (LogManager.shutdown).
		if leo := l.LogEndOffset(); leo != l.snapshotOffset.Load() {
			errs = append(errs, l.producers.WriteSnapshot(l.dir, leo))
		}
	}
	for _, seg := range segs {
		errs = append(errs, seg.close())
	}
	l.hwMu.Lock()
	l.notifyLocked()
	l.hwMu.Unlock()
	return errors.Join(errs...)
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch (UnifiedLog.endOffsetForEpoch over
// LeaderEpochFileCache.endOffsetFor): the largest known epoch <= epoch and the offset
// where it ended (the log end offset for the latest epoch); (-1, -1) when epoch is
// undefined or newer than any known epoch.
func (l *Log) EndOffsetForEpoch(epoch int32) (leaderEpoch int32, endOffset int64) {
	return l.epochs.endOffsetFor(epoch, l.LogEndOffset())
}

// LatestEpoch is the newest leader epoch seen by AppendAsLeader, or -1.
func (l *Log) LatestEpoch() int32 { return l.epochs.latestEpoch() }

func (l *Log) name() string { return partitionDirName(l.topic, l.partition) }

// CollectAbortedTxns lists the aborted transactions a read_committed fetch from
// fetchOffset must be told of: those whose marker is at or after fetchOffset and
// whose data starts before upperBound (UnifiedLog.collectAbortedTransactions).
func (l *Log) CollectAbortedTxns(fetchOffset, upperBound int64) []AbortedTxn {
	segs := *l.segments.Load()
	i := sort.Search(len(segs), func(i int) bool { return segs[i].baseOffset > fetchOffset }) - 1
	var out []AbortedTxn
	for i = max(i, 0); i < len(segs) && segs[i].baseOffset < upperBound; i++ {
		out = segs[i].txnIndex.collect(fetchOffset, upperBound, out)
	}
	return out
}

// ProducerStates returns the state of every producer that wrote to the log
// (DescribeProducers).
func (l *Log) ProducerStates() []idempotence.ProducerStateEntry { return l.producers.Producers() }

// removeExpiredProducers forgets producers idle for producer.id.expiration.ms
// (UnifiedLog.removeExpiredProducers); never one with an open transaction.
func (l *Log) removeExpiredProducers(expirationMs int64) int {
	if l.closed.Load() {
		return 0
	}
	return l.producers.RemoveExpired(l.now().UnixMilli() - expirationMs)
}

// loadProducerState rebuilds the producer state and the transaction indexes at
// start-up (LogLoader / UnifiedLog.rebuildProducerState): index entries of markers
// past the log end are dropped, then the newest usable snapshot is loaded and the
// batches after it are replayed; aborts found on the way whose index entry was
// lost are indexed again. snapshots is false when the directory is known to
// hold none (a fresh state then needs no listing).
func (l *Log) loadProducerState(snapshots bool) error {
	segs := *l.segments.Load()
	logEnd := l.LogEndOffset()
	for _, seg := range segs {
		if err := seg.txnIndex.truncateTo(logEnd); err != nil {
			return err
		}
	}
	var from int64
	if snapshots {
		var err error
		if from, err = l.producers.LoadSnapshot(l.dir, logEnd); err != nil {
			return err
		}
	}
	l.snapshotOffset.Store(from)
	from = max(from, l.LogStartOffset())
	l.producers.Lock()
	defer func() {
		l.firstUnstable.Store(l.producers.FirstUnstableOffset())
		l.producers.Unlock()
	}()
	var hbuf [BatchHeaderSize]byte
	var batch []byte
	for i, seg := range segs {
		if i+1 < len(segs) && segs[i+1].baseOffset <= from {
			continue
		}
		_, pos := seg.offsetIndex.lookup(from)
		for size := seg.size(); pos < size; {
			h, err := seg.readHeader(&hbuf, pos, size)
			if err != nil {
				return err
			}
			at := pos
			pos += int64(h.Size())
			if h.LastOffset() < from {
				continue
			}
			err = l.replayBatch(seg, h, func() ([]byte, error) {
				batch, err = seg.readBatch(batch, at, h)
				return batch, err
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}
