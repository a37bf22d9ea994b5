package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
)

// txnIndexEntrySize: version int16, producer id, first offset, last offset
// and last stable offset, int64 each, big endian (Kafka AbortedTxn).
const (
	txnIndexEntrySize = 2 + 8 + 8 + 8 + 8
	abortedTxnVersion = 0
)

// AbortedTxn is an aborted transaction of one producer in a partition: its
// records lie in [FirstOffset, LastOffset), its ABORT marker at LastOffset.
// LastStableOffset is what the partition's LSO became when it was aborted.
// read_committed consumers get these in Fetch responses and drop the
// producer's records in that range.
type AbortedTxn struct {
	ProducerID       int64
	FirstOffset      int64
	LastOffset       int64
	LastStableOffset int64
}

// TransactionIndex lists the aborted transactions whose markers lie in one
// segment (Kafka TransactionIndex, file <base>.txnindex). Entries are
// appended in marker order. Most segments never see an abort, so the file is
// created on the first entry and no descriptor is held between writes.
// Not checksummed: recovery truncates entries past the log end and replays
// the markers after the last producer snapshot.
type TransactionIndex struct {
	path string

	mu      sync.RWMutex
	entries []AbortedTxn
	dirty   bool // appended since the last fsync
}

// openTransactionIndex loads path if it exists (exists false: the caller
// knows it does not). A torn or foreign tail is cut off: the entries before
// it stand.
func openTransactionIndex(path string, exists bool) (*TransactionIndex, error) {
	x := &TransactionIndex{path: path}
	if !exists {
		return x, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return x, nil
	}
	if err != nil {
		return nil, err
	}
	x.entries = decodeAbortedTxns(b)
	if len(x.entries)*txnIndexEntrySize != len(b) {
		if err := x.rewrite(); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// decodeAbortedTxns parses whole valid entries up to the first bad one.
func decodeAbortedTxns(b []byte) []AbortedTxn {
	var out []AbortedTxn
	for ; len(b) >= txnIndexEntrySize; b = b[txnIndexEntrySize:] {
		e := AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(b[2:])),
			FirstOffset:      int64(binary.BigEndian.Uint64(b[10:])),
			LastOffset:       int64(binary.BigEndian.Uint64(b[18:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(b[26:])),
		}
		if binary.BigEndian.Uint16(b) != abortedTxnVersion || e.FirstOffset < 0 || e.LastOffset < e.FirstOffset ||
			(len(out) > 0 && e.LastOffset <= out[len(out)-1].LastOffset) {
			break
		}
		out = append(out, e)
	}
	return out
}

func appendAbortedTxn(b []byte, e AbortedTxn) []byte {
	b = binary.BigEndian.AppendUint16(b, abortedTxnVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(e.ProducerID))
	b = binary.BigEndian.AppendUint64(b, uint64(e.FirstOffset))
	b = binary.BigEndian.AppendUint64(b, uint64(e.LastOffset))
	return binary.BigEndian.AppendUint64(b, uint64(e.LastStableOffset))
}

// lastOffset is the marker offset of the last entry, -1 if none.
func (x *TransactionIndex) lastOffset() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.entries) == 0 {
		return -1
	}
	return x.entries[len(x.entries)-1].LastOffset
}

// append adds an entry for a marker after every existing one. Called under
// the Log's lock.
func (x *TransactionIndex) append(e AbortedTxn) error {
	if last := x.lastOffset(); e.LastOffset <= last {
		return fmt.Errorf("storage: aborted transaction at %d is not after %d in %s", e.LastOffset, last, x.path)
	}
	f, err := os.OpenFile(x.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(appendAbortedTxn(nil, e))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// Whatever part was written is cut off on the next load.
		return err
	}
	x.mu.Lock()
	x.entries = append(x.entries, e)
	x.dirty = true
	x.mu.Unlock()
	return nil
}

// truncateTo drops entries of markers at or after offset (the log was cut
// there).
func (x *TransactionIndex) truncateTo(offset int64) error {
	x.mu.Lock()
	n := len(x.entries)
	for n > 0 && x.entries[n-1].LastOffset >= offset {
		n--
	}
	changed := n != len(x.entries)
	x.entries = x.entries[:n]
	x.mu.Unlock()
	if !changed {
		return nil
	}
	return x.rewrite()
}

func (x *TransactionIndex) rewrite() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.entries) == 0 {
		if err := os.Remove(x.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	var b []byte
	for _, e := range x.entries {
		b = appendAbortedTxn(b, e)
	}
	x.dirty = true
	return os.WriteFile(x.path, b, 0o644)
}

// collect appends the entries that overlap [fetchOffset, upperBound): their
// marker is at or after fetchOffset and their data starts before upperBound
// (TransactionIndex.collectAbortedTxns).
func (x *TransactionIndex) collect(fetchOffset, upperBound int64, out []AbortedTxn) []AbortedTxn {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, e := range x.entries {
		if e.LastOffset >= fetchOffset && e.FirstOffset < upperBound {
			out = append(out, e)
		}
	}
	return out
}

func (x *TransactionIndex) flush() error {
	x.mu.Lock()
	dirty := x.dirty
	x.dirty = false
	x.mu.Unlock()
	if !dirty {
		return nil
	}
	f, err := os.OpenFile(x.path, os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil // truncated away or deleted meanwhile
	}
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		x.mu.Lock()
		x.dirty = true
		x.mu.Unlock()
	}
	return err
}

func (x *TransactionIndex) remove() { os.Remove(x.path) }
