package storage

import (
	"encoding/binary"
	"hash/maphash"
)

// offsetMapSlotSize is one slot of a SkimpyOffsetMap: a 16-byte hash of the key
// and the 8-byte offset (+1, so that zero means an empty slot).
const (
	offsetMapHashSize = 16
	offsetMapSlotSize = offsetMapHashSize + 8
)

// dedupeBufferLoadFactor is log.cleaner.io.buffer.load.factor: the map counts as
// full at 90% of its slots, so that probes stay short.
const dedupeBufferLoadFactor = 0.9

// SkimpyOffsetMap maps record keys to the offset of their latest record (Kafka
// SkimpyOffsetMap) in a fixed byte slice: open addressing with linear probing over
// slots that store only a 128-bit hash of the key, never the key itself. Two keys
// sharing a hash would be taken for one (Kafka makes the same bet with MD5); two
// independent 64-bit maphash seeds give the 128 bits.
//
// Not safe for concurrent use: one cleaner goroutine owns each map.
type SkimpyOffsetMap struct {
	slots        []byte
	numSlots     int
	entries      int
	latestOffset int64 // the largest offset put, -1 when empty
	seed1, seed2 maphash.Seed
	lookups      int64
	probes       int64
}

// newSkimpyOffsetMap makes a map over memory bytes (at least one slot).
func newSkimpyOffsetMap(memory int64) *SkimpyOffsetMap {
	n := max(int(memory/offsetMapSlotSize), 2)
	return &SkimpyOffsetMap{
		slots:        make([]byte, n*offsetMapSlotSize),
		numSlots:     n,
		latestOffset: -1,
		seed1:        maphash.MakeSeed(),
		seed2:        maphash.MakeSeed(),
	}
}

// maxEntries is the map's capacity in entries before it counts as full.
func (m *SkimpyOffsetMap) maxEntries() int {
	return max(int(float64(m.numSlots)*dedupeBufferLoadFactor), 1)
}

// full reports whether another new key would pass the load factor.
func (m *SkimpyOffsetMap) full() bool { return m.entries >= m.maxEntries() }

// Size is the number of keys in the map.
func (m *SkimpyOffsetMap) Size() int { return m.entries }

// utilization is the share of the map's usable slots in use (Kafka's
// max-buffer-utilization-percent).
func (m *SkimpyOffsetMap) utilization() float64 {
	return float64(m.entries) / float64(m.maxEntries())
}

func (m *SkimpyOffsetMap) hash(key []byte) (h [offsetMapHashSize]byte) {
	binary.LittleEndian.PutUint64(h[:8], maphash.Bytes(m.seed1, key))
	binary.LittleEndian.PutUint64(h[8:], maphash.Bytes(m.seed2, key))
	return h
}

// find returns the position of key's slot, or of the empty slot where it would go.
func (m *SkimpyOffsetMap) find(h *[offsetMapHashSize]byte) int {
	i := int(binary.LittleEndian.Uint64(h[:8]) % uint64(m.numSlots))
	m.lookups++
	for {
		pos := i * offsetMapSlotSize
		slot := m.slots[pos : pos+offsetMapSlotSize]
		if binary.LittleEndian.Uint64(slot[offsetMapHashSize:]) == 0 || [offsetMapHashSize]byte(slot[:offsetMapHashSize]) == *h {
			return pos
		}
		m.probes++
		if i++; i == m.numSlots {
			i = 0
		}
	}
}

// put records offset as key's latest. The caller checks full first for new keys;
// an update of a known key always fits.
func (m *SkimpyOffsetMap) put(key []byte, offset int64) {
	h := m.hash(key)
	pos := m.find(&h)
	slot := m.slots[pos : pos+offsetMapSlotSize]
	if binary.LittleEndian.Uint64(slot[offsetMapHashSize:]) == 0 {
		if m.entries >= m.numSlots-1 {
			return // never fill the last slot: find needs an empty one to stop at
		}
		m.entries++
		copy(slot, h[:])
	}
	binary.LittleEndian.PutUint64(slot[offsetMapHashSize:], uint64(offset)+1)
	m.latestOffset = max(m.latestOffset, offset)
}

// get is the latest offset recorded for key, or -1.
func (m *SkimpyOffsetMap) get(key []byte) int64 {
	h := m.hash(key)
	pos := m.find(&h)
	return int64(binary.LittleEndian.Uint64(m.slots[pos+offsetMapHashSize:])) - 1
}

// updateLatestOffset notes that the map covers offsets up to offset, keys or not
// (a batch's last offset, past records without a key or control batches).
func (m *SkimpyOffsetMap) updateLatestOffset(offset int64) {
	m.latestOffset = max(m.latestOffset, offset)
}
