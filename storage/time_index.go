package storage

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
)

// timeIndexEntrySize: timestamp int64 + relative offset uint32, big endian.
const timeIndexEntrySize = 12

// noTimestamp is RecordBatch.NO_TIMESTAMP.
const noTimestamp = -1

// TimeIndex maps timestamps to offsets in one segment (Kafka TimeIndex). File format:
// 12-byte entries, a timestamp (int64) then an offset relative to the segment's base
// offset (uint32), big endian. An entry (t, o) says t is the largest timestamp of any
// record at or before offset o in this segment, first reached in the batch ending at
// o; timestamps strictly increase from entry to entry. Entries are added next to
// OffsetIndex entries, and once more when the segment stops being active or is
// closed, so the last entry carries the segment's largest timestamp. Not
// checksummed; rebuilt from the log when it fails sanityCheck.
type TimeIndex struct {
	*indexFile
	baseOffset int64

	mu      sync.RWMutex
	entries []timestampOffset
}

type timestampOffset struct {
	timestamp int64
	relOffset uint32
}

func openTimeIndex(path string, baseOffset int64, exists bool) (*TimeIndex, error) {
	f, b, err := openIndexFile(path, exists)
	if err != nil {
		return nil, err
	}
	idx := &TimeIndex{indexFile: f, baseOffset: baseOffset}
	if len(b)%timeIndexEntrySize != 0 {
		return idx, fmt.Errorf("%w: %s: size %d is not a multiple of %d", ErrCorruptIndex, path, len(b), timeIndexEntrySize)
	}
	idx.entries = make([]timestampOffset, len(b)/timeIndexEntrySize)
	for i := range idx.entries {
		idx.entries[i] = timestampOffset{
			timestamp: int64(binary.BigEndian.Uint64(b[i*timeIndexEntrySize:])),
			relOffset: binary.BigEndian.Uint32(b[i*timeIndexEntrySize+8:]),
		}
	}
	return idx, nil
}

func (x *TimeIndex) entryCount() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.entries)
}

// lookup returns the last entry with timestamp <= target, or (noTimestamp,
// baseOffset) (TimeIndex.lookup). Offsets before the returned one cannot hold a
// timestamp >= target, so a search may start there.
func (x *TimeIndex) lookup(target int64) (timestamp, offset int64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i := sort.Search(len(x.entries), func(i int) bool { return x.entries[i].timestamp > target }) - 1
	if i < 0 {
		return noTimestamp, x.baseOffset
	}
	return x.entries[i].timestamp, x.baseOffset + int64(x.entries[i].relOffset)
}

// lastEntry returns the last entry, or (noTimestamp, baseOffset).
func (x *TimeIndex) lastEntry() (timestamp, offset int64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.entries) == 0 {
		return noTimestamp, x.baseOffset
	}
	e := x.entries[len(x.entries)-1]
	return e.timestamp, x.baseOffset + int64(e.relOffset)
}

// maybeAppend adds (timestamp, offset) if timestamp is larger than the last entry's
// (TimeIndex.maybeAppend).
func (x *TimeIndex) maybeAppend(timestamp, offset int64) {
	e := timestampOffset{timestamp: timestamp, relOffset: uint32(offset - x.baseOffset)}
	x.mu.Lock()
	n := len(x.entries)
	if timestamp <= noTimestamp || (n > 0 && (timestamp <= x.entries[n-1].timestamp || e.relOffset < x.entries[n-1].relOffset)) {
		x.mu.Unlock()
		return
	}
	x.entries = append(x.entries, e)
	x.mu.Unlock()
	var buf [timeIndexEntrySize]byte
	binary.BigEndian.PutUint64(buf[0:], uint64(e.timestamp))
	binary.BigEndian.PutUint32(buf[8:], e.relOffset)
	x.writeEntry(buf[:], int64(n)*timeIndexEntrySize)
}

// reset replaces all entries and rewrites the file.
func (x *TimeIndex) reset(entries []timestampOffset) {
	x.mu.Lock()
	x.entries = entries
	x.mu.Unlock()
	buf := make([]byte, 0, len(entries)*timeIndexEntrySize)
	for _, e := range entries {
		buf = binary.BigEndian.AppendUint64(buf, uint64(e.timestamp))
		buf = binary.BigEndian.AppendUint32(buf, e.relOffset)
	}
	x.rewrite(buf)
}

// sanityCheck validates loaded entries: timestamps strictly increasing, offsets
// non-decreasing and inside the segment (TimeIndex.sanityCheck, stricter).
func (x *TimeIndex) sanityCheck(lastOffset int64) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for i, e := range x.entries {
		if e.timestamp < 0 {
			return fmt.Errorf("%w: %s: entry %d has negative timestamp", ErrCorruptIndex, x.path, i)
		}
		if i > 0 && (e.timestamp <= x.entries[i-1].timestamp || e.relOffset < x.entries[i-1].relOffset) {
			return fmt.Errorf("%w: %s: entry %d not increasing", ErrCorruptIndex, x.path, i)
		}
		if x.baseOffset+int64(e.relOffset) > lastOffset {
			return fmt.Errorf("%w: %s: entry %d offset beyond the segment", ErrCorruptIndex, x.path, i)
		}
	}
	return nil
}
