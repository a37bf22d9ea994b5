package storage

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"sync"
)

// LogSegment is one segment of a partition log (Kafka LogSegment): the .log file
// holding batches with offsets from baseOffset up to the next segment's base offset,
// and its sparse .index and .timeindex.
//
// Appends, rolls, recovery and deletion run under the owning Log's lock. Reads take a
// reference on the FileRecords and run concurrently, bounded by a position the Log
// has published, so they never see a batch that is still being written.
type LogSegment struct {
	baseOffset  int64
	log         *FileRecords
	offsetIndex *OffsetIndex
	timeIndex   *TimeIndex
	txnIndex    *TransactionIndex

	// Guarded by the Log's lock.
	bytesSinceLastIndexEntry int64
	rollingBasedTime         int64 // ms of the first append (segment.ms age); -1 while empty

	tsMu                 sync.Mutex
	maxTimestamp         int64 // largest batch MaxTimestamp so far, noTimestamp if none
	offsetOfMaxTimestamp int64 // last offset of the batch that first reached it
}

// openSegment opens (creating if missing) the three files of the segment at
// baseOffset. indexErr reports an index file that is unusable as it stands: the
// caller must recover the segment, which rebuilds the indexes. listed, if not
// nil, holds the names of the files in dir: an index file not among them is
// known to be missing and not looked up.
func openSegment(dir string, baseOffset int64, listed map[string]bool) (seg *LogSegment, indexErr, err error) {
	return openSegmentFiles(dir, baseOffset, "", listed)
}

// openSegmentFiles is openSegment on the files named with an extra suffix (the
// LogCleaner writes "<base>.log.cleaned" and its indexes beside the live segment).
func openSegmentFiles(dir string, baseOffset int64, suffix string, listed map[string]bool) (seg *LogSegment, indexErr, err error) {
	exists := func(sfx string) bool { return listed == nil || listed[filenamePrefixFromOffset(baseOffset)+sfx+suffix] }
	fr, err := openFileRecords(segmentFile(dir, baseOffset, logFileSuffix+suffix))
	if err != nil {
		return nil, nil, err
	}
	oi, oerr := openOffsetIndex(segmentFile(dir, baseOffset, indexFileSuffix+suffix), baseOffset, exists(indexFileSuffix))
	if oi == nil {
		fr.release()
		return nil, nil, oerr
	}
	ti, terr := openTimeIndex(segmentFile(dir, baseOffset, timeIndexFileSuffix+suffix), baseOffset, exists(timeIndexFileSuffix))
	if ti == nil {
		oi.close()
		fr.release()
		return nil, nil, terr
	}
	xi, err := openTransactionIndex(segmentFile(dir, baseOffset, txnIndexFileSuffix+suffix), exists(txnIndexFileSuffix))
	if err != nil {
		ti.close()
		oi.close()
		fr.release()
		return nil, nil, err
	}
	seg = &LogSegment{
		baseOffset:           baseOffset,
		log:                  fr,
		offsetIndex:          oi,
		timeIndex:            ti,
		txnIndex:             xi,
		rollingBasedTime:     -1,
		maxTimestamp:         noTimestamp,
		offsetOfMaxTimestamp: baseOffset,
	}
	return seg, errors.Join(oerr, terr), nil
}

// createSegment makes a new empty segment, clearing any stale files of that name.
func createSegment(dir string, baseOffset int64) (*LogSegment, error) {
	for _, suffix := range []string{logFileSuffix, indexFileSuffix, timeIndexFileSuffix, txnIndexFileSuffix} {
		if err := os.Remove(segmentFile(dir, baseOffset, suffix)); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	return openEmptySegment(dir, baseOffset)
}

// openEmptySegment makes a new empty segment where no file of that name exists.
func openEmptySegment(dir string, baseOffset int64) (*LogSegment, error) {
	seg, _, err := openSegment(dir, baseOffset, map[string]bool{})
	return seg, err
}

func (s *LogSegment) size() int64 { return s.log.sizeInBytes() }

// maxTimestampSoFar returns the largest batch timestamp and the offset it was
// first seen at.
func (s *LogSegment) maxTimestampSoFar() (int64, int64) {
	s.tsMu.Lock()
	defer s.tsMu.Unlock()
	return s.maxTimestamp, s.offsetOfMaxTimestamp
}

func (s *LogSegment) updateMaxTimestamp(ts, offset int64) {
	s.tsMu.Lock()
	if ts > s.maxTimestamp {
		s.maxTimestamp, s.offsetOfMaxTimestamp = ts, offset
	}
	s.tsMu.Unlock()
}

// largestTimestamp is what time retention compares (LogSegment.largestTimestamp):
// the largest record timestamp, or the file's modification time when no batch has one.
func (s *LogSegment) largestTimestamp() int64 {
	if ts, _ := s.maxTimestampSoFar(); ts >= 0 {
		return ts
	}
	if st, err := s.log.file.Stat(); err == nil {
		return st.ModTime().UnixMilli()
	}
	return noTimestamp
}

// appendBatch describes one batch of an append, after offsets were assigned.
type appendBatch struct {
	size         int64
	lastOffset   int64
	maxTimestamp int64
}

// append writes records (the whole append, already stamped) in one write and indexes
// its batches (LogSegment.append): an OffsetIndex entry for a batch's last offset at
// the batch's position, plus a TimeIndex entry for the largest timestamp so far,
// whenever more than index.interval.bytes were written since the last entry.
func (s *LogSegment) append(records []byte, batches []appendBatch, indexIntervalBytes, nowMs int64) error {
	pos, err := s.log.append(records)
	if err != nil {
		return err
	}
	if s.rollingBasedTime < 0 {
		s.rollingBasedTime = nowMs
	}
	for _, b := range batches {
		s.updateMaxTimestamp(b.maxTimestamp, b.lastOffset)
		if s.bytesSinceLastIndexEntry > indexIntervalBytes {
			s.offsetIndex.append(b.lastOffset, pos)
			s.timeIndex.maybeAppend(s.maxTimestampSoFar())
			s.bytesSinceLastIndexEntry = 0
		}
		pos += b.size
		s.bytesSinceLastIndexEntry += b.size
	}
	return nil
}

// shouldRoll reports whether an append of appendSize bytes ending at lastOffset must go
// to a new segment (LogSegment.shouldRoll). An empty segment never rolls: there is
// nothing to roll away from.
func (s *LogSegment) shouldRoll(cfg LogConfig, appendSize, lastOffset, nowMs int64) bool {
	size := s.size()
	if size == 0 {
		return false
	}
	return size > cfg.SegmentBytes-appendSize ||
		(s.rollingBasedTime >= 0 && nowMs-s.rollingBasedTime > cfg.SegmentMs) ||
		s.offsetIndex.entryCount() >= maxIndexEntries(cfg.SegmentIndexBytes, offsetIndexEntrySize) ||
		s.timeIndex.entryCount() >= maxIndexEntries(cfg.SegmentIndexBytes, timeIndexEntrySize) ||
		!s.canConvertToRelativeOffset(lastOffset)
}

// canConvertToRelativeOffset: index entries store offset-baseOffset in 32 bits; like
// Kafka we keep it within int32.
func (s *LogSegment) canConvertToRelativeOffset(offset int64) bool {
	d := offset - s.baseOffset
	return d >= 0 && d <= math.MaxInt32
}

// onBecomeInactive records the segment's largest timestamp as the last time index
// entry, so that it survives a restart (LogSegment.onBecomeInactiveSegment).
func (s *LogSegment) onBecomeInactive() {
	s.timeIndex.maybeAppend(s.maxTimestampSoFar())
}

func (s *LogSegment) flush() error {
	return errors.Join(s.log.flush(), s.offsetIndex.flush(), s.timeIndex.flush(), s.txnIndex.flush())
}

// close closes the segment's files; held FileRegions keep the .log open.
func (s *LogSegment) close() error {
	s.onBecomeInactive()
	err := errors.Join(s.offsetIndex.close(), s.timeIndex.close())
	s.log.release()
	return err
}

// delete renames the .log to .deleted (removed once no FileRegion uses it) and
// removes the indexes, which no reader holds (LogSegment.deleteIfExists).
func (s *LogSegment) delete() error {
	err := s.markDeleted()
	s.log.release()
	return err
}

// markDeleted is delete without letting go of the segment's own reference: it
// stays readable through its open file until the caller releases it.
func (s *LogSegment) markDeleted() error {
	err := s.log.markDeleted()
	s.offsetIndex.remove()
	s.timeIndex.remove()
	s.txnIndex.remove()
	return err
}

// readHeader reads the batch header at pos; the batch must end at or before limit.
func (s *LogSegment) readHeader(buf *[BatchHeaderSize]byte, pos, limit int64) (BatchHeader, error) {
	if limit-pos < BatchHeaderSize {
		return BatchHeader{}, fmt.Errorf("%w: %s: partial batch header at position %d", ErrCorruptRecord, s.log.path, pos)
	}
	if _, err := s.log.readAt(buf[:], pos); err != nil {
		return BatchHeader{}, fmt.Errorf("storage: read %s at %d: %w", s.log.path, pos, err)
	}
	h, err := ParseBatchHeader(buf[:])
	if err != nil {
		return h, fmt.Errorf("%w (%s, position %d)", err, s.log.path, pos)
	}
	if int64(h.Size()) > limit-pos {
		return h, fmt.Errorf("%w: %s: batch at position %d overruns the segment", ErrCorruptRecord, s.log.path, pos)
	}
	return h, nil
}

// readBatch reads the whole batch at pos into buf (grown as needed).
func (s *LogSegment) readBatch(buf []byte, pos int64, h BatchHeader) ([]byte, error) {
	n := h.Size()
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := s.log.readAt(buf, pos); err != nil {
		return nil, fmt.Errorf("storage: read %s at %d: %w", s.log.path, pos, err)
	}
	return buf, nil
}

// translateOffset finds the first batch with a last offset >= offset, scanning from
// the index's greatest lower bound up to maxPos (LogSegment.translateOffset).
func (s *LogSegment) translateOffset(offset, maxPos int64) (pos int64, h BatchHeader, found bool, err error) {
	_, pos = s.offsetIndex.lookup(offset)
	var buf [BatchHeaderSize]byte
	for pos < maxPos {
		if h, err = s.readHeader(&buf, pos, maxPos); err != nil {
			return 0, h, false, err
		}
		if h.LastOffset() >= offset {
			return pos, h, true, nil
		}
		pos += int64(h.Size())
	}
	return 0, BatchHeader{}, false, nil
}

// read returns whole batches from the one holding offset, at most maxBytes of them
// (unless minOneMessage and the first is larger), ending at or before maxPos and
// before any batch reaching maxOffset (LogSegment.read, aligned to batch boundaries).
// first is the base offset of the first batch returned and last the last offset of
// the last one, both -1 when the region is empty. found is false when the segment
// holds nothing at or after offset.
func (s *LogSegment) read(offset int64, maxBytes int32, maxPos, maxOffset int64, minOneMessage bool) (region FileRegion, first, last int64, found bool, err error) {
	start, h, found, err := s.translateOffset(offset, maxPos)
	if err != nil || !found {
		return FileRegion{}, -1, -1, found, err
	}
	if h.LastOffset() >= maxOffset {
		return FileRegion{}, -1, -1, true, nil
	}
	end := start + int64(h.Size())
	if end-start > int64(maxBytes) {
		if !minOneMessage {
			return FileRegion{}, -1, -1, true, nil
		}
		return s.log.slice(start, end-start), h.BaseOffset, h.LastOffset(), true, nil
	}
	limit := min(start+int64(max(maxBytes, 0)), maxPos)
	last = h.LastOffset() // of the last batch included so far; -1 while unknown
	// The offset index tells where a batch starts without reading the ones before it.
	// Its position is kept strictly below limit so that the loop reads at least the
	// header there: the batch ending at the jump position was not read, and its last
	// offset is learned from the next one. (An entry exactly at limit is passed over
	// for the one before it: only then are a few more headers read than before.)
	if p, ok := s.offsetIndex.lastBatchStartBefore(end, limit-1, maxOffset); ok && p > end {
		end, last = p, -1
	}
	var buf [BatchHeaderSize]byte
	for end < limit {
		next, err := s.readHeader(&buf, end, maxPos)
		if err != nil {
			return FileRegion{}, -1, -1, true, err
		}
		if end+int64(next.Size()) > limit || next.LastOffset() >= maxOffset {
			if last < 0 {
				// The batch before the jump ended below next's base offset;
				// with compaction gaps this counts the gap too (metrics only).
				last = next.BaseOffset - 1
			}
			break
		}
		last = next.LastOffset()
		end += int64(next.Size())
	}
	return s.log.slice(start, end-start), h.BaseOffset, last, true, nil
}

// findOffsetByTimestamp returns the first record at or after startingOffset with a
// timestamp >= ts (LogSegment.findOffsetByTimestamp, FileRecords.searchForTimestamp):
// the time index gives an offset no later than the answer, the offset index a position
// to scan from; batches whose MaxTimestamp is below ts are skipped without decoding.
func (s *LogSegment) findOffsetByTimestamp(ts, startingOffset, maxPos int64) (offset, timestamp int64, found bool, err error) {
	_, from := s.timeIndex.lookup(ts)
	_, pos := s.offsetIndex.lookup(max(from, startingOffset))
	var hbuf [BatchHeaderSize]byte
	var batch []byte
	for pos < maxPos {
		h, err := s.readHeader(&hbuf, pos, maxPos)
		if err != nil {
			return 0, 0, false, err
		}
		if h.MaxTimestamp >= ts && h.LastOffset() >= startingOffset {
			if batch, err = s.readBatch(batch, pos, h); err != nil {
				return 0, 0, false, err
			}
			err = RecordsWithoutHeaders(batch, func(r Record) bool {
				if r.Timestamp >= ts && r.Offset >= startingOffset {
					offset, timestamp, found = r.Offset, r.Timestamp, true
					return false
				}
				return true
			})
			if err != nil || found {
				return offset, timestamp, found, err
			}
		}
		pos += int64(h.Size())
	}
	return 0, 0, false, nil
}

// findOffsetOfMaxTimestamp finds the first record carrying the segment's largest
// timestamp (UnifiedLog.fetchOffsetByTimestamp for MAX_TIMESTAMP, KIP-734).
func (s *LogSegment) findOffsetOfMaxTimestamp(maxPos int64) (offset, timestamp int64, found bool, err error) {
	ts, off := s.maxTimestampSoFar()
	if ts < 0 {
		return 0, 0, false, nil
	}
	_, pos := s.offsetIndex.lookup(off)
	var hbuf [BatchHeaderSize]byte
	var batch []byte
	for pos < maxPos {
		h, err := s.readHeader(&hbuf, pos, maxPos)
		if err != nil {
			return 0, 0, false, err
		}
		if h.MaxTimestamp == ts {
			if h.TimestampType() == 1 { // LogAppendTime: every record carries it
				return h.BaseOffset, ts, true, nil
			}
			if batch, err = s.readBatch(batch, pos, h); err != nil {
				return 0, 0, false, err
			}
			err = RecordsWithoutHeaders(batch, func(r Record) bool {
				if r.Timestamp == ts {
					offset, found = r.Offset, true
					return false
				}
				return true
			})
			if err != nil || found {
				return offset, ts, found, err
			}
		}
		pos += int64(h.Size())
	}
	return 0, 0, false, nil
}

// scanResult is what a pass over a segment's batches learned.
type scanResult struct {
	nextOffset    int64 // last offset + 1, or the base offset when empty
	validBytes    int64 // the file is a valid batch sequence up to here
	oidx          []offsetPosition
	tidx          []timestampOffset
	maxTimestamp  int64
	offsetOfMaxTs int64
	lastIndexPos  int64
	firstMaxTs    int64 // MaxTimestamp of the first batch, -1 when empty
	epochs        []epochEntry
	err           error // why the scan stopped before the end of the file, nil at a clean end
}

// scan walks the batches from position from (whose batch must have base offset at
// least expectBase, or, if expectLast >= 0, last offset expectLast) to the end of
// the file, checking that each header parses, fits the file and has offsets above
// the previous batch's (compacted segments have gaps), and
// with verifyCRC that its CRC-32C matches. It builds the index entries recovery
// needs. I/O errors are returned; invalid data only ends the scan (res.err).
func (s *LogSegment) scan(from, expectBase, expectLast int64, verifyCRC bool, indexIntervalBytes int64) (scanResult, error) {
	size := s.size()
	res := scanResult{nextOffset: expectBase, validBytes: from, maxTimestamp: noTimestamp, offsetOfMaxTs: s.baseOffset, lastIndexPos: from, firstMaxTs: noTimestamp}
	var hbuf [BatchHeaderSize]byte
	var batch []byte
	pos := from
	for pos < size {
		if size-pos < BatchHeaderSize {
			res.err = fmt.Errorf("%w: %d trailing bytes at position %d", ErrCorruptRecord, size-pos, pos)
			break
		}
		if _, err := s.log.readAt(hbuf[:], pos); err != nil {
			return res, fmt.Errorf("storage: read %s at %d: %w", s.log.path, pos, err)
		}
		h, err := ParseBatchHeader(hbuf[:])
		if err != nil {
			res.err = err
			break
		}
		bsize := int64(h.Size())
		switch {
		case bsize > size-pos:
			err = fmt.Errorf("%w: batch of %d bytes at position %d, %d left", ErrCorruptRecord, bsize, pos, size-pos)
		case h.LastOffsetDelta < 0:
			err = fmt.Errorf("%w: negative last offset delta at position %d", ErrCorruptRecord, pos)
		case pos == from && expectLast >= 0 && h.LastOffset() != expectLast:
			err = fmt.Errorf("%w: index entry says last offset %d at position %d, batch has %d", ErrCorruptIndex, expectLast, pos, h.LastOffset())
		case (pos != from || expectLast < 0) && h.BaseOffset < res.nextOffset:
			// Offsets only grow; gaps are what the LogCleaner leaves (and what a
			// follower of a compacted leader copies).
			err = fmt.Errorf("%w: base offset %d at position %d, want at least %d", ErrCorruptRecord, h.BaseOffset, pos, res.nextOffset)
		case !s.canConvertToRelativeOffset(h.BaseOffset) || !s.canConvertToRelativeOffset(h.LastOffset()):
			err = fmt.Errorf("%w: offset %d does not fit segment %d", ErrCorruptRecord, h.LastOffset(), s.baseOffset)
		}
		if err == nil && verifyCRC {
			if batch, err = s.readBatch(batch, pos, h); err != nil {
				return res, err
			}
			if crc32.Checksum(batch[attributesOffset:], castagnoli) != h.CRC {
				err = fmt.Errorf("%w: crc mismatch at position %d", ErrCorruptRecord, pos)
			}
		}
		if err != nil {
			res.err = err
			break
		}
		if pos == from {
			res.firstMaxTs = h.MaxTimestamp
		}
		if h.MaxTimestamp > res.maxTimestamp {
			res.maxTimestamp, res.offsetOfMaxTs = h.MaxTimestamp, h.LastOffset()
		}
		if pos-res.lastIndexPos > indexIntervalBytes {
			res.oidx = append(res.oidx, offsetPosition{relOffset: uint32(h.LastOffset() - s.baseOffset), position: uint32(pos)})
			if n := len(res.tidx); res.maxTimestamp >= 0 && (n == 0 || res.maxTimestamp > res.tidx[n-1].timestamp) {
				res.tidx = append(res.tidx, timestampOffset{timestamp: res.maxTimestamp, relOffset: uint32(res.offsetOfMaxTs - s.baseOffset)})
			}
			res.lastIndexPos = pos
		}
		if e := h.PartitionLeaderEpoch; e >= 0 && (len(res.epochs) == 0 || e > res.epochs[len(res.epochs)-1].epoch) {
			res.epochs = append(res.epochs, epochEntry{epoch: e, startOffset: h.BaseOffset})
		}
		pos += bsize
		res.validBytes = pos
		res.nextOffset = h.LastOffset() + 1
	}
	return res, nil
}

// recover rebuilds the segment from its .log (LogSegment.recover): every batch is
// checked (length, offsets, CRC-32C), the file is truncated after the last valid one,
// and both indexes are rebuilt. It returns the next offset and the bytes cut off.
func (s *LogSegment) recover(indexIntervalBytes int64, epochs *LeaderEpochFileCache) (int64, int64, error) {
	res, err := s.scan(0, s.baseOffset, -1, true, indexIntervalBytes)
	if err != nil {
		return 0, 0, err
	}
	truncated := s.size() - res.validBytes
	if truncated > 0 {
		if err := s.log.truncateTo(res.validBytes); err != nil {
			return 0, 0, err
		}
	}
	s.rebuildIndexes(res)
	if epochs != nil {
		for _, e := range res.epochs {
			if e.epoch > epochs.latestEpoch() {
				epochs.assign(e.epoch, e.startOffset)
			}
		}
	}
	return res.nextOffset, truncated, nil
}

// rebuildIndexes replaces both indexes with those a whole-segment scan built.
func (s *LogSegment) rebuildIndexes(res scanResult) {
	// The last entry carries the segment's largest timestamp, as after a clean close.
	if n := len(res.tidx); res.maxTimestamp >= 0 && (n == 0 || res.maxTimestamp > res.tidx[n-1].timestamp) {
		res.tidx = append(res.tidx, timestampOffset{timestamp: res.maxTimestamp, relOffset: uint32(res.offsetOfMaxTs - s.baseOffset)})
	}
	s.offsetIndex.reset(res.oidx)
	s.timeIndex.reset(res.tidx)
	s.tsMu.Lock()
	s.maxTimestamp, s.offsetOfMaxTimestamp = res.maxTimestamp, res.offsetOfMaxTs
	s.tsMu.Unlock()
	s.bytesSinceLastIndexEntry = res.validBytes - res.lastIndexPos
}

// loadTail checks a segment without reading all of it: the batches from the last
// offset index entry to the end of the file must parse and continue the offsets (and,
// with verifyCRC, match their CRCs), and both indexes must pass their sanity checks.
// The segment's largest timestamp comes from the time index, topped up from the tail.
// A nil error means the segment can be used as is; otherwise the caller recovers it.
func (s *LogSegment) loadTail(verifyCRC bool, indexIntervalBytes int64) (int64, error) {
	var res scanResult
	var err error
	if s.offsetIndex.entryCount() == 0 {
		// No index to start from: the scan covers the whole segment, so it can
		// rebuild a lost index on the way.
		res, err = s.scan(0, s.baseOffset, -1, verifyCRC, indexIntervalBytes)
		if err == nil && res.err == nil && len(res.oidx) > 0 {
			s.rebuildIndexes(res)
			return res.nextOffset, nil
		}
	} else {
		lastOff, pos := s.offsetIndex.lastEntry()
		if pos >= s.size() {
			return 0, fmt.Errorf("%w: %s: last entry beyond the log", ErrCorruptIndex, s.offsetIndex.path)
		}
		res, err = s.scan(pos, 0, lastOff, verifyCRC, indexIntervalBytes)
	}
	if err != nil {
		return 0, err
	}
	if res.err != nil {
		return 0, res.err
	}
	size := s.size()
	if err := s.offsetIndex.sanityCheck(size, res.nextOffset-1); err != nil {
		return 0, err
	}
	if err := s.timeIndex.sanityCheck(res.nextOffset - 1); err != nil {
		return 0, err
	}
	if s.timeIndex.entryCount() == 0 && s.offsetIndex.entryCount() > 0 {
		// Offset entries come with time entries unless no batch has a timestamp; an
		// empty time index may have lost the largest timestamp before the tail.
		return 0, fmt.Errorf("%w: %s: empty time index", ErrCorruptIndex, s.timeIndex.path)
	}
	ts, off := s.timeIndex.lastEntry()
	if res.maxTimestamp > ts {
		ts, off = res.maxTimestamp, res.offsetOfMaxTs
		s.timeIndex.maybeAppend(ts, off)
	}
	s.tsMu.Lock()
	s.maxTimestamp, s.offsetOfMaxTimestamp = ts, off
	s.tsMu.Unlock()
	return res.nextOffset, nil
}

// truncateTo cuts the segment before the batch holding offset, or after its
// last batch below offset, so that it keeps whole batches (LogSegment.truncateTo);
// the indexes are rebuilt from what is left, as recovery does, and
// TransactionIndex entries of markers cut off are dropped. It returns the
// segment's new next offset. FileRegions already handed out past the cut read
// short (SendTo fails); the Log hides those bytes from new reads first.
func (s *LogSegment) truncateTo(offset, indexIntervalBytes, nowMs int64) (int64, error) {
	pos, _, found, err := s.translateOffset(offset, s.size())
	if err != nil {
		return 0, err
	}
	if found {
		if err := s.log.truncateTo(pos); err != nil {
			return 0, err
		}
	}
	res, err := s.scan(0, s.baseOffset, -1, false, indexIntervalBytes)
	if err == nil {
		err = res.err
	}
	if err != nil {
		return 0, err
	}
	s.rebuildIndexes(res)
	if err := s.txnIndex.truncateTo(res.nextOffset); err != nil {
		return 0, err
	}
	if s.size() == 0 {
		s.rollingBasedTime = -1
	}
	s.loadRollingBasedTime(nowMs)
	return res.nextOffset, nil
}

// loadRollingBasedTime starts segment.ms for a segment that has batches but no
// append time yet (loaded, or made active again by a truncation): Kafka uses
// the first batch's timestamp, unless it lies in the future.
func (s *LogSegment) loadRollingBasedTime(nowMs int64) {
	if s.size() == 0 || s.rollingBasedTime >= 0 {
		return
	}
	s.rollingBasedTime = nowMs
	if ts := s.firstBatchTimestamp(); ts >= 0 && ts < nowMs {
		s.rollingBasedTime = ts
	}
}

// firstBatchTimestamp is the first batch's MaxTimestamp, or -1 (Kafka bases segment.ms
// on it after a restart).
func (s *LogSegment) firstBatchTimestamp() int64 {
	var buf [BatchHeaderSize]byte
	if s.size() < BatchHeaderSize {
		return noTimestamp
	}
	if _, err := s.log.readAt(buf[:], 0); err != nil && err != io.EOF {
		return noTimestamp
	}
	h, err := ParseBatchHeader(buf[:])
	if err != nil {
		return noTimestamp
	}
	return h.MaxTimestamp
}
