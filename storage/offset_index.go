package storage

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
)

// offsetIndexEntrySize: relative offset uint32 + position uint32, big endian.
const offsetIndexEntrySize = 8

// OffsetIndex maps offsets to byte positions in one segment's .log file (Kafka
// OffsetIndex). File format: 8-byte entries, each the offset relative to the
// segment's base offset (uint32) then the position of a batch start (uint32), big
// endian, in increasing order of both. An entry (o, p) says the batch starting at p
// has last offset o. It is sparse, one entry per index.interval.bytes of log, so a
// lookup gives a position to scan forward from. It is not checksummed: a file that
// fails sanityCheck is rebuilt from the log.
//
// Entries are kept in memory; reads take the read lock and may run concurrently with
// the single appender.
type OffsetIndex struct {
	*indexFile
	baseOffset int64

	mu      sync.RWMutex
	entries []offsetPosition
}

type offsetPosition struct {
	relOffset uint32
	position  uint32
}

// openOffsetIndex loads the index file. A file whose size is not a whole number of
// entries comes back with ErrCorruptIndex and no entries: the caller rebuilds it.
func openOffsetIndex(path string, baseOffset int64, exists bool) (*OffsetIndex, error) {
	f, b, err := openIndexFile(path, exists)
	if err != nil {
		return nil, err
	}
	idx := &OffsetIndex{indexFile: f, baseOffset: baseOffset}
	if len(b)%offsetIndexEntrySize != 0 {
		return idx, fmt.Errorf("%w: %s: size %d is not a multiple of %d", ErrCorruptIndex, path, len(b), offsetIndexEntrySize)
	}
	idx.entries = make([]offsetPosition, len(b)/offsetIndexEntrySize)
	for i := range idx.entries {
		idx.entries[i] = offsetPosition{
			relOffset: binary.BigEndian.Uint32(b[i*offsetIndexEntrySize:]),
			position:  binary.BigEndian.Uint32(b[i*offsetIndexEntrySize+4:]),
		}
	}
	return idx, nil
}

func (x *OffsetIndex) entryCount() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.entries)
}

// lookup returns the last entry with offset <= target, or (baseOffset, 0)
// (OffsetIndex.lookup: the greatest lower bound).
func (x *OffsetIndex) lookup(target int64) (offset, position int64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i := sort.Search(len(x.entries), func(i int) bool {
		return x.baseOffset+int64(x.entries[i].relOffset) > target
	}) - 1
	if i < 0 {
		return x.baseOffset, 0
	}
	return x.baseOffset + int64(x.entries[i].relOffset), int64(x.entries[i].position)
}

// lastBatchStartBefore returns the position of the last indexed batch that starts at
// or after from, at or before maxPos, and whose last offset is below maxOffset; ok is
// false when there is none. Every batch before that position lies wholly below
// maxOffset, which lets Read skip scanning them.
func (x *OffsetIndex) lastBatchStartBefore(from, maxPos, maxOffset int64) (int64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	byPos := sort.Search(len(x.entries), func(i int) bool { return int64(x.entries[i].position) > maxPos })
	byOff := sort.Search(len(x.entries), func(i int) bool {
		return x.baseOffset+int64(x.entries[i].relOffset) >= maxOffset
	})
	i := min(byPos, byOff) - 1
	if i < 0 || int64(x.entries[i].position) < from {
		return 0, false
	}
	return int64(x.entries[i].position), true
}

// lastEntry returns the last entry, or (baseOffset, 0).
func (x *OffsetIndex) lastEntry() (offset, position int64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.entries) == 0 {
		return x.baseOffset, 0
	}
	e := x.entries[len(x.entries)-1]
	return x.baseOffset + int64(e.relOffset), int64(e.position)
}

// append adds an entry; offset must be larger than the last one's (the Log's lock
// guarantees it).
func (x *OffsetIndex) append(offset, position int64) {
	e := offsetPosition{relOffset: uint32(offset - x.baseOffset), position: uint32(position)}
	x.mu.Lock()
	n := len(x.entries)
	if n > 0 && x.entries[n-1].relOffset >= e.relOffset {
		x.mu.Unlock()
		return
	}
	x.entries = append(x.entries, e)
	x.mu.Unlock()
	var buf [offsetIndexEntrySize]byte
	binary.BigEndian.PutUint32(buf[0:], e.relOffset)
	binary.BigEndian.PutUint32(buf[4:], e.position)
	x.writeEntry(buf[:], int64(n)*offsetIndexEntrySize)
}

// reset replaces all entries (rebuild during recovery) and rewrites the file.
func (x *OffsetIndex) reset(entries []offsetPosition) {
	x.mu.Lock()
	x.entries = entries
	x.mu.Unlock()
	buf := make([]byte, 0, len(entries)*offsetIndexEntrySize)
	for _, e := range entries {
		buf = binary.BigEndian.AppendUint32(buf, e.relOffset)
		buf = binary.BigEndian.AppendUint32(buf, e.position)
	}
	x.rewrite(buf)
}

// sanityCheck validates loaded entries against the log: offsets and positions
// strictly increasing, positions inside the file, the last offset not beyond the
// segment's last offset (OffsetIndex.sanityCheck, made stricter because we cannot
// trust an unchecksummed file).
func (x *OffsetIndex) sanityCheck(logSize, lastOffset int64) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for i, e := range x.entries {
		if int64(e.position) >= logSize {
			return fmt.Errorf("%w: %s: entry %d position %d beyond log size %d", ErrCorruptIndex, x.path, i, e.position, logSize)
		}
		if i > 0 && (e.relOffset <= x.entries[i-1].relOffset || e.position <= x.entries[i-1].position) {
			return fmt.Errorf("%w: %s: entry %d not increasing", ErrCorruptIndex, x.path, i)
		}
		if x.baseOffset+int64(e.relOffset) > lastOffset {
			return fmt.Errorf("%w: %s: entry %d offset beyond the segment", ErrCorruptIndex, x.path, i)
		}
	}
	return nil
}
