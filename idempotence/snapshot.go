package idempotence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kbroker/kbroker/internal/atomicfile"
)

// Snapshot files are Kafka's ProducerSnapshot v1, named by the log end
// offset they describe: <20-digit offset>.snapshot.
//
//	version int16 | crc uint32 (CRC-32C of what follows) | count int32 |
//	count × (producerId int64, epoch int16, lastSequence int32,
//	         lastOffset int64, offsetDelta int32, timestamp int64,
//	         coordinatorEpoch int32, currentTxnFirstOffset int64)
//
// Like Kafka's, a snapshot keeps each producer's last batch only.
const (
	snapshotVersion   = 1
	snapshotEntrySize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8
	snapshotHeader    = 2 + 4 + 4
)

// SnapshotSuffix ends the name of every snapshot file.
const SnapshotSuffix = ".snapshot"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptSnapshot reports a snapshot that fails its checks; recovery
// then falls back to an older snapshot or the whole log.
var ErrCorruptSnapshot = errors.New("idempotence: corrupt producer snapshot")

// SnapshotPath names the snapshot of offset in dir.
func SnapshotPath(dir string, offset int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", offset, SnapshotSuffix))
}

// EncodeSnapshot serializes the state.
func (m *ProducerStateManager) EncodeSnapshot() []byte {
	m.mu.Lock()
	ids := make([]int64, 0, len(m.producers))
	for id := range m.producers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b := make([]byte, snapshotHeader, snapshotHeader+len(ids)*snapshotEntrySize)
	binary.BigEndian.PutUint16(b[0:], snapshotVersion)
	binary.BigEndian.PutUint32(b[6:], uint32(len(ids)))
	for _, id := range ids {
		e := m.producers[id]
		// A producer without batches (a marker moved its epoch) is written
		// as Kafka does: no sequence, offset -1.
		last := BatchMetadata{FirstSeq: -1, LastSeq: -1, FirstOffset: -1, LastOffset: -1}
		if len(e.Batches) > 0 {
			last = e.Batches[len(e.Batches)-1]
		}
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.ProducerEpoch))
		b = binary.BigEndian.AppendUint32(b, uint32(last.LastSeq))
		b = binary.BigEndian.AppendUint64(b, uint64(last.LastOffset))
		b = binary.BigEndian.AppendUint32(b, uint32(last.LastOffset-last.FirstOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(e.LastTimestamp))
		b = binary.BigEndian.AppendUint32(b, uint32(e.CoordinatorEpoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.CurrentTxnFirstOffset))
	}
	m.mu.Unlock()
	binary.BigEndian.PutUint32(b[2:], crc32.Checksum(b[6:], castagnoli))
	return b
}

// DecodeSnapshot parses a snapshot into producer entries.
func DecodeSnapshot(b []byte) ([]ProducerStateEntry, error) {
	if len(b) < snapshotHeader {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorruptSnapshot, len(b))
	}
	if v := binary.BigEndian.Uint16(b); v != snapshotVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorruptSnapshot, v)
	}
	if crc := crc32.Checksum(b[6:], castagnoli); crc != binary.BigEndian.Uint32(b[2:]) {
		return nil, fmt.Errorf("%w: crc mismatch", ErrCorruptSnapshot)
	}
	n := int64(int32(binary.BigEndian.Uint32(b[6:])))
	if n < 0 || int64(len(b)-snapshotHeader) != n*snapshotEntrySize {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", ErrCorruptSnapshot, n, len(b))
	}
	out := make([]ProducerStateEntry, 0, n)
	for p := b[snapshotHeader:]; len(p) > 0; p = p[snapshotEntrySize:] {
		lastSeq := int32(binary.BigEndian.Uint32(p[10:]))
		lastOffset := int64(binary.BigEndian.Uint64(p[14:]))
		delta := int32(binary.BigEndian.Uint32(p[22:]))
		ts := int64(binary.BigEndian.Uint64(p[26:]))
		txnFirst := int64(binary.BigEndian.Uint64(p[38:]))
		e := ProducerStateEntry{
			ProducerID:            int64(binary.BigEndian.Uint64(p[0:])),
			ProducerEpoch:         int16(binary.BigEndian.Uint16(p[8:])),
			LastTimestamp:         ts,
			CoordinatorEpoch:      int32(binary.BigEndian.Uint32(p[34:])),
			CurrentTxnFirstOffset: max(txnFirst, -1),
		}
		switch {
		case lastOffset >= 0 && lastSeq >= 0 && delta >= 0 && int64(delta) <= lastOffset:
			e.Batches = []BatchMetadata{{
				FirstSeq: decrementSeq(lastSeq, delta), LastSeq: lastSeq,
				FirstOffset: lastOffset - int64(delta), LastOffset: lastOffset, Timestamp: ts,
			}}
		case lastOffset == -1 && lastSeq == -1:
		default:
			return nil, fmt.Errorf("%w: entry with sequence %d, offset %d, offset delta %d", ErrCorruptSnapshot, lastSeq, lastOffset, delta)
		}
		out = append(out, e)
	}
	return out, nil
}

// decrementSeq steps a sequence back, wrapping below 0 to MaxInt32 as
// DefaultRecordBatch.decrementSequence does.
func decrementSeq(seq, by int32) int32 {
	if seq < by {
		return math.MaxInt32 - (by - seq) + 1
	}
	return seq - by
}

// WriteSnapshot writes the state as of log end offset to dir and removes
// older snapshots but the latest before it. It does not fsync: a snapshot
// lost or torn by a machine crash fails its CRC and recovery falls back to
// an older one or to the log, so durability would only buy speed of
// recovery at the price of two fsyncs per partition on every roll and
// shutdown. The rename keeps readers from seeing a half-written file.
func (m *ProducerStateManager) WriteSnapshot(dir string, offset int64) error {
	path := SnapshotPath(dir, offset)
	if err := os.WriteFile(path+atomicfile.TmpSuffix, m.EncodeSnapshot(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(path+atomicfile.TmpSuffix, path); err != nil {
		os.Remove(path + atomicfile.TmpSuffix)
		return err
	}
	offsets, _ := snapshotOffsets(dir)
	for i := 0; i < len(offsets)-2; i++ { // keep the newest two
		os.Remove(SnapshotPath(dir, offsets[i]))
	}
	return nil
}

// snapshotOffsets lists the offsets of the snapshots in dir, ascending.
func snapshotOffsets(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), SnapshotSuffix)
		if !ok {
			continue
		}
		if off, err := strconv.ParseInt(name, 10, 64); err == nil && off >= 0 {
			out = append(out, off)
		}
	}
	slices.Sort(out)
	return out, nil
}

// LoadSnapshot resets the state of a partition whose log ends at logEnd to
// the newest readable snapshot at or below logEnd and returns its offset,
// or 0 without one. Snapshots above logEnd describe a truncated tail and
// unreadable ones are useless: both are deleted. The caller then replays
// the log from the returned offset (Replay, CompleteTxn), as Kafka's
// LogLoader does.
func (m *ProducerStateManager) LoadSnapshot(dir string, logEnd int64) (int64, error) {
	offsets, err := snapshotOffsets(dir)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.producers)
	clear(m.ongoing)
	for i := len(offsets) - 1; i >= 0; i-- {
		off := offsets[i]
		if off > logEnd {
			os.Remove(SnapshotPath(dir, off))
			continue
		}
		b, err := os.ReadFile(SnapshotPath(dir, off))
		if err != nil {
			return 0, err
		}
		entries, err := DecodeSnapshot(b)
		if err != nil {
			os.Remove(SnapshotPath(dir, off)) // an older one, or the log, will do
			continue
		}
		for i := range entries {
			e := &entries[i]
			m.producers[e.ProducerID] = e
			if e.CurrentTxnFirstOffset >= 0 {
				m.ongoing[e.ProducerID] = e.CurrentTxnFirstOffset
			}
		}
		return off, nil
	}
	return 0, nil
}

// Replay applies a batch read back from the log during recovery: no checks,
// the log is the truth; only a batch of an epoch older than the one known
// is skipped. Call with the manager locked.
func (m *ProducerStateManager) Replay(b Batch) {
	if e := m.producers[b.ProducerID]; e != nil && b.ProducerEpoch < e.ProducerEpoch {
		return
	}
	m.updateLocked(b)
}

// DeleteSnapshotsBefore removes the snapshots of offsets below offset (the
// log start moved past them).
func DeleteSnapshotsBefore(dir string, offset int64) {
	offsets, _ := snapshotOffsets(dir)
	for _, off := range offsets {
		if off < offset {
			os.Remove(SnapshotPath(dir, off))
		}
	}
}
