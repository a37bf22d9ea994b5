package storage

import (
	"encoding/binary"
	"fmt"
	"math"
)

// deleteHorizonFlagBit is attribute bit 6 of a RecordBatch (KIP-534,
// DefaultRecordBatch.DELETE_HORIZON_FLAG_MASK): the LogCleaner set the batch's
// BaseTimestamp to the delete horizon, the time after which its tombstones (or,
// for a control batch, its transaction marker) may be removed.
const deleteHorizonFlagBit = 0x40

// deleteHorizonMs is the batch's delete horizon, ok false when none was set.
func (h BatchHeader) deleteHorizonMs() (int64, bool) {
	if h.Attributes&deleteHorizonFlagBit == 0 {
		return 0, false
	}
	return h.BaseTimestamp, true
}

// batchRetention is RecordFilter.BatchRetention: what to do with a batch whose
// records may all be filtered away.
type batchRetention int

const (
	deleteEmpty batchRetention = iota // DELETE_EMPTY: keep the batch if any record stays
	retainEmpty                       // RETAIN_EMPTY: keep at least an empty header (producer state)
	deleteBatch                       // DELETE: drop the whole batch
)

// lastRecord is what the cleaner must keep of an active producer
// (UnifiedLog's LastRecord): the offset of its last data batch, whose header
// carries its last sequence, or -1 when its last entry is a marker, kept for its
// epoch.
type lastRecord struct {
	lastDataOffset int64
	producerEpoch  int16
}

// batchFilter decides, batch by batch, what a clean keeps (the RecordFilter of
// Kafka's Cleaner.cleanInto, applied as MemoryRecords.filterTo applies it).
type batchFilter struct {
	offsetMap         *SkimpyOffsetMap
	txns              *cleanedTransactionMetadata
	activeProducers   map[int64]lastRecord
	nowMs             int64
	deleteRetentionMs int64

	// scratch, reused across batches
	body []byte
	kept []keptRecord

	// stats
	recordsRead, recordsKept int64
}

type keptRecord struct {
	raw       []byte // the encoded record: length varint, attributes, deltas, key, value, headers
	timestamp int64
}

// filter appends to dst what is kept of batch (exactly one whole, CRC-checked v2
// batch with header h): nothing, the batch as it is, an empty header, or the batch
// rebuilt with fewer records and/or a delete horizon. A rebuilt batch keeps its base
// offset, last offset delta, producer fields, leader epoch and codec; its CRC-32C is
// recomputed.
func (f *batchFilter) filter(dst, batch []byte, h BatchHeader) ([]byte, error) {
	// What is copied as it is must be what was appended: a batch that went bad on
	// disk stops the clean (the log is left as it is) rather than being spread.
	if err := VerifyBatchCRC(batch); err != nil {
		return nil, err
	}
	// Kafka's checkBatchRetention. Markers piggy-back on the tombstone horizon: a
	// marker goes only once no data of its transaction is left and its horizon has
	// passed.
	var canDiscard bool
	var err error
	if h.IsControl() {
		canDiscard, err = f.txns.onControlBatchRead(batch, h)
		if err != nil {
			return nil, err
		}
	} else {
		canDiscard = f.txns.onBatchRead(h)
	}
	horizon, hasHorizon := h.deleteHorizonMs()
	discardRecords := canDiscard
	if h.IsControl() {
		discardRecords = canDiscard && hasHorizon && horizon <= f.nowMs
	}
	retention := deleteEmpty
	switch {
	case h.ProducerID >= 0 && f.isLastBatchOfProducer(h):
		retention = retainEmpty
	case discardRecords:
		retention = deleteBatch
	}
	containsMarkerForEmptyTxn := canDiscard && h.IsControl()
	if retention == deleteBatch {
		return dst, nil
	}

	f.kept = f.kept[:0]
	writeOriginal, containsTombstones := true, false
	maxTs := int64(noTimestamp)
	err = f.forEachRecord(batch, h, func(raw []byte, r Record) {
		f.recordsRead++
		keep := !discardRecords && (h.IsControl() || f.shouldRetainRecord(h, r, horizon, hasHorizon))
		if !keep {
			writeOriginal = false
			return
		}
		if r.Value == nil {
			containsTombstones = true
		}
		f.kept = append(f.kept, keptRecord{raw: raw, timestamp: r.Timestamp})
		maxTs = max(maxTs, r.Timestamp)
	})
	if err != nil {
		return nil, err
	}
	f.recordsKept += int64(len(f.kept))
	if len(f.kept) == 0 {
		if retention == retainEmpty {
			return appendEmptyBatch(dst, h), nil
		}
		return dst, nil
	}
	needHorizon := (containsTombstones || containsMarkerForEmptyTxn) && !hasHorizon
	if writeOriginal && !needHorizon {
		return append(dst, batch...), nil
	}
	newHorizon := int64(-1)
	if needHorizon {
		newHorizon = f.nowMs + f.deleteRetentionMs
		if f.deleteRetentionMs > math.MaxInt64-f.nowMs {
			newHorizon = math.MaxInt64
		}
	} else if hasHorizon {
		newHorizon = horizon
	}
	return f.rebuild(dst, h, newHorizon, maxTs)
}

// shouldRetainRecord is Cleaner.shouldRetainRecord: a record is kept if it lies past
// what the offset map covers, or if it is its key's latest and either has a value
// or is a tombstone whose batch's delete horizon has not passed (or was never set:
// the first clean sets it). Records without a key are dropped.
func (f *batchFilter) shouldRetainRecord(h BatchHeader, r Record, horizon int64, hasHorizon bool) bool {
	if r.Offset > f.offsetMap.latestOffset {
		return true
	}
	if r.Key == nil {
		return false
	}
	if r.Offset < f.offsetMap.get(r.Key) {
		return false
	}
	retainDeletes := !hasHorizon || f.nowMs < horizon
	return r.Value != nil || retainDeletes
}

// isLastBatchOfProducer: the batch holding an active producer's last sequence, or,
// when its last entry is a marker, that marker (for the epoch), is kept even when
// emptied so that the producer state survives a rebuild from the log.
func (f *batchFilter) isLastBatchOfProducer(h BatchHeader) bool {
	lr, ok := f.activeProducers[h.ProducerID]
	if !ok {
		return false
	}
	if lr.lastDataOffset >= 0 {
		return h.LastOffset() == lr.lastDataOffset
	}
	return h.IsControl() && h.ProducerEpoch == lr.producerEpoch
}

// forEachRecord decodes batch's records (decompressing into f.body) and calls fn
// with each record's encoded bytes and its decoded fields; both alias f.body or
// batch until the next call. Timestamps are the records' own, also in LogAppendTime
// batches (the raw bytes are what a rebuild copies).
func (f *batchFilter) forEachRecord(batch []byte, h BatchHeader, fn func(raw []byte, r Record)) error {
	if h.RecordCount < 0 {
		return fmt.Errorf("%w: negative record count %d", ErrCorruptRecord, h.RecordCount)
	}
	body := batch[BatchHeaderSize:]
	if h.Compression() != compressionNone {
		var err error
		if f.body, err = decompressLimit(h.Compression(), body, maxUncompressedBatchBytes, f.body); err != nil {
			return err
		}
		body = f.body
	}
	if int64(h.RecordCount)*minRecordSize > int64(len(body)) {
		return fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrCorruptRecord, h.RecordCount, len(body))
	}
	for i := int32(0); i < h.RecordCount; i++ {
		r, n, err := readRecord(body, h, false) // the cleaner keeps records whole: headers unread
		if err != nil {
			return fmt.Errorf("%w (record %d of %d)", err, i, h.RecordCount)
		}
		if r.Offset < h.BaseOffset || r.Offset > h.LastOffset() {
			return fmt.Errorf("%w: record offset %d outside batch [%d, %d]", ErrCorruptRecord, r.Offset, h.BaseOffset, h.LastOffset())
		}
		fn(body[:n:n], r)
		body = body[n:]
	}
	if len(body) != 0 {
		return fmt.Errorf("%w: %d bytes after the last record", ErrCorruptRecord, len(body))
	}
	return nil
}

// rebuild appends a batch of f.kept (MemoryRecords.buildRetainedRecordsInto): the
// header of h with the new record count, the delete horizon as base timestamp when
// horizon >= 0 (each record's timestamp delta re-encoded against it), the largest
// kept timestamp as MaxTimestamp for CreateTime, and the records compressed with
// h's codec. Base offset and last offset delta are h's: the batch's last offset
// carries its producer's last sequence.
func (f *batchFilter) rebuild(dst []byte, h BatchHeader, horizon, maxTs int64) ([]byte, error) {
	baseTs := h.BaseTimestamp
	attrs := h.Attributes &^ deleteHorizonFlagBit
	if horizon >= 0 {
		baseTs = horizon
		attrs |= deleteHorizonFlagBit
	}
	var records []byte
	for _, k := range f.kept {
		if baseTs == h.BaseTimestamp {
			records = append(records, k.raw...)
			continue
		}
		records = appendRetimedRecord(records, k.raw, k.timestamp-baseTs)
	}
	start := len(dst)
	dst = append(dst, make([]byte, BatchHeaderSize)...)
	var err error
	if h.Compression() == compressionNone {
		dst = append(dst, records...)
	} else if dst, err = compress(h.Compression(), dst, records); err != nil {
		return nil, err
	}
	b := dst[start:]
	if h.TimestampType() == 1 {
		maxTs = h.MaxTimestamp // LogAppendTime: the broker's stamp stays
	}
	putBatchHeader(b, h, attrs, baseTs, maxTs, int32(len(f.kept)))
	return dst, nil
}

// appendRetimedRecord appends raw with its timestamp delta replaced by delta.
func appendRetimedRecord(dst, raw []byte, delta int64) []byte {
	_, n := varint(raw) // length
	rest := raw[n:]
	attr := rest[0]
	_, tn := varlong(rest[1:])
	tail := rest[1+tn:] // offset delta, key, value, headers
	var tmp [binary.MaxVarintLen64]byte
	body := append([]byte{attr}, tmp[:binary.PutVarint(tmp[:], delta)]...)
	body = append(body, tail...)
	dst = append(dst, tmp[:binary.PutVarint(tmp[:], int64(len(body)))]...)
	return append(dst, body...)
}

// putBatchHeader writes a v2 header over b[:BatchHeaderSize], b being the whole
// batch, and computes its CRC.
func putBatchHeader(b []byte, h BatchHeader, attrs int16, baseTs, maxTs int64, count int32) {
	be := binary.BigEndian
	be.PutUint64(b[baseOffsetOffset:], uint64(h.BaseOffset))
	be.PutUint32(b[batchLengthOffset:], uint32(len(b)-logOverhead))
	be.PutUint32(b[partitionLeaderEpochOffset:], uint32(h.PartitionLeaderEpoch))
	b[magicOffset] = magicV2
	be.PutUint16(b[attributesOffset:], uint16(attrs))
	be.PutUint32(b[lastOffsetDeltaOffset:], uint32(h.LastOffsetDelta))
	be.PutUint64(b[baseTimestampOffset:], uint64(baseTs))
	be.PutUint64(b[maxTimestampOffset:], uint64(maxTs))
	be.PutUint64(b[producerIDOffset:], uint64(h.ProducerID))
	be.PutUint16(b[producerEpochOffset:], uint16(h.ProducerEpoch))
	be.PutUint32(b[baseSequenceOffset:], uint32(h.BaseSequence))
	be.PutUint32(b[recordCountOffset:], uint32(count))
	setBatchCRC(b)
}

// appendEmptyBatch appends the header-only batch Kafka keeps for a producer's last
// sequence (DefaultRecordBatch.writeEmptyHeader): same offsets, producer fields,
// leader epoch and flags, no compression, no base timestamp, zero records.
func appendEmptyBatch(dst []byte, h BatchHeader) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, BatchHeaderSize)...)
	attrs := h.Attributes & (timestampTypeMask | transactionalFlagBit | controlFlagBit)
	putBatchHeader(dst[start:], h, attrs, noTimestamp, h.MaxTimestamp, 0)
	return dst
}

// cleanedTransactionMetadata follows transactions through a clean (Kafka's
// CleanedTransactionMetadata): which aborted transactions are open at the current
// batch, so their data is dropped, and which committed ones, so their markers stay
// while data of theirs is still in the log. aborted must be sorted by first offset.
type cleanedTransactionMetadata struct {
	aborted          []AbortedTxn
	ongoingCommitted map[int64]bool
	ongoingAborted   map[int64]*abortedTxnMetadata
	// cleanedIndex collects the aborted transactions whose markers the clean keeps
	// because it met data of theirs (the cleaned segment's TransactionIndex).
	cleanedIndex []AbortedTxn
}

type abortedTxnMetadata struct {
	txn          AbortedTxn
	lastObserved int64 // last offset of the last data batch of it met, -1 if none
}

func newCleanedTransactionMetadata(aborted []AbortedTxn) *cleanedTransactionMetadata {
	return &cleanedTransactionMetadata{
		aborted:          aborted,
		ongoingCommitted: map[int64]bool{},
		ongoingAborted:   map[int64]*abortedTxnMetadata{},
	}
}

func (t *cleanedTransactionMetadata) consumeAbortedTxnsUpTo(offset int64) {
	for len(t.aborted) > 0 && t.aborted[0].FirstOffset <= offset {
		a := t.aborted[0]
		t.ongoingAborted[a.ProducerID] = &abortedTxnMetadata{txn: a, lastObserved: -1}
		t.aborted = t.aborted[1:]
	}
}

// onBatchRead reports whether a data batch belongs to an aborted transaction.
func (t *cleanedTransactionMetadata) onBatchRead(h BatchHeader) bool {
	t.consumeAbortedTxnsUpTo(h.LastOffset())
	if !h.IsTransactional() {
		return false
	}
	if a, ok := t.ongoingAborted[h.ProducerID]; ok {
		a.lastObserved = h.LastOffset()
		return true
	}
	t.ongoingCommitted[h.ProducerID] = true
	return false
}

// onControlBatchRead reports whether a marker may be discarded: no data of its
// transaction was met in this clean. An emptied control batch was cleaned before.
func (t *cleanedTransactionMetadata) onControlBatchRead(batch []byte, h BatchHeader) (bool, error) {
	t.consumeAbortedTxnsUpTo(h.LastOffset())
	if h.RecordCount == 0 {
		return true, nil
	}
	m, err := DecodeEndTxnMarker(batch)
	if err != nil {
		return false, nil // another control type: kept
	}
	pid := h.ProducerID
	if m.Commit {
		seen := t.ongoingCommitted[pid]
		delete(t.ongoingCommitted, pid)
		return !seen, nil
	}
	a, ok := t.ongoingAborted[pid]
	delete(t.ongoingAborted, pid)
	if ok && a.lastObserved >= 0 {
		// Kept until every batch of the transaction is gone.
		t.cleanedIndex = append(t.cleanedIndex, a.txn)
		return false, nil
	}
	return true, nil
}
