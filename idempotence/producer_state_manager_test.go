package idempotence

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func batch(pid int64, epoch int16, seq, n int32, offset int64) Batch {
	return Batch{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, LastSequence: LastSeq(seq, n-1),
		FirstOffset: offset, LastOffset: offset + int64(n) - 1, MaxTimestamp: offset}
}

// appendAt checks and, if new, records b; it returns the duplicate found.
func appendAt(t *testing.T, m *ProducerStateManager, b Batch) (*BatchMetadata, error) {
	t.Helper()
	m.Lock()
	defer m.Unlock()
	dup, err := m.Check(b)
	if err == nil && dup == nil {
		m.Update(b)
	}
	return dup, err
}

func TestSequenceRules(t *testing.T) {
	m := NewProducerStateManager()
	mustAppend := func(b Batch) {
		t.Helper()
		if dup, err := appendAt(t, m, b); err != nil || dup != nil {
			t.Fatalf("append %+v: dup %v err %v", b, dup, err)
		}
	}
	// A producer without state may start anywhere (KIP-360).
	mustAppend(batch(1, 0, 7, 3, 0)) // seqs 7-9, offsets 0-2
	mustAppend(batch(1, 0, 10, 2, 3))
	// A retry of a recent batch is a duplicate with its original offsets.
	dup, err := appendAt(t, m, batch(1, 0, 7, 3, 100))
	if err != nil || dup == nil || dup.FirstOffset != 0 || dup.LastOffset != 2 {
		t.Fatalf("retry: dup %+v err %v", dup, err)
	}
	// A gap or a partial overlap is out of order.
	for _, b := range []Batch{batch(1, 0, 13, 1, 5), batch(1, 0, 8, 3, 5)} {
		if _, err := appendAt(t, m, b); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Errorf("seq %d: %v, want out of order", b.BaseSequence, err)
		}
	}
	// Only the last five batches are remembered.
	for i := int32(0); i < 5; i++ {
		mustAppend(batch(1, 0, 12+i, 1, 5+int64(i)))
	}
	if _, err := appendAt(t, m, batch(1, 0, 10, 2, 50)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Errorf("a batch older than the last five: %v", err)
	}
	// A new epoch starts at 0; an older epoch is fenced.
	if _, err := appendAt(t, m, batch(1, 1, 5, 1, 10)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Errorf("new epoch at sequence 5: %v", err)
	}
	mustAppend(batch(1, 1, 0, 1, 10))
	if _, err := appendAt(t, m, batch(1, 0, 17, 1, 11)); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Errorf("old epoch: %v", err)
	}
	// Sequences wrap at MaxInt32.
	mustAppend(batch(2, 0, math.MaxInt32-1, 2, 20))
	mustAppend(batch(2, 0, 0, 1, 22))
	if got := LastSeq(math.MaxInt32-1, 3); got != 1 {
		t.Errorf("LastSeq wraps to %d, want 1", got)
	}
}

func TestSnapshotRecover(t *testing.T) {
	dir := t.TempDir()
	m := NewProducerStateManager()
	for i := int32(0); i < 3; i++ {
		appendAt(t, m, batch(1, 2, i*2, 2, int64(i)*2)) // offsets 0-5
	}
	appendAt(t, m, batch(9, 0, math.MaxInt32, 2, 6)) // seqs MaxInt32, 0
	if err := m.WriteSnapshot(dir, 8); err != nil {
		t.Fatal(err)
	}
	log := []Batch{batch(1, 2, 6, 1, 8), batch(3, 0, 0, 1, 9)} // after the snapshot
	r := NewProducerStateManager()
	from, err := r.LoadSnapshot(dir, 10)
	if err != nil || from != 8 {
		t.Fatalf("LoadSnapshot = %d, %v; want 8", from, err)
	}
	r.Lock()
	for _, b := range log {
		if b.FirstOffset >= from {
			r.Replay(b)
		}
	}
	r.Unlock()
	if _, err := appendAt(t, r, batch(1, 2, 7, 1, 10)); err != nil {
		t.Errorf("after recovery producer 1 continues: %v", err)
	}
	if dup, _ := appendAt(t, r, batch(3, 0, 0, 1, 11)); dup == nil || dup.FirstOffset != 9 {
		t.Errorf("a batch replayed from the log is a duplicate: %+v", dup)
	}
	if e, ok := r.Entry(9); !ok || e.Batches[0].FirstSeq != math.MaxInt32 || e.Batches[0].LastSeq != 0 {
		t.Errorf("wrapped entry: %+v", e)
	}

	// A snapshot past the log end (a truncated tail) is dropped; a corrupt
	// one falls back to the log.
	os.WriteFile(SnapshotPath(dir, 50), m.EncodeSnapshot(), 0o644)
	b, _ := os.ReadFile(SnapshotPath(dir, 8))
	b[len(b)-1] ^= 1
	os.WriteFile(SnapshotPath(dir, 8), b, 0o644)
	r2 := NewProducerStateManager()
	if from, err := r2.LoadSnapshot(dir, 10); err != nil || from != 0 {
		t.Errorf("with no usable snapshot replay starts at %d (%v)", from, err)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*.snapshot")); len(matches) != 0 {
		t.Errorf("snapshots left: %v", matches)
	}
}

func TestTransactions(t *testing.T) {
	m := NewProducerStateManager()
	txnBatch := func(pid int64, seq int32, offset int64) Batch {
		b := batch(pid, 0, seq, 1, offset)
		b.IsTransactional = true
		return b
	}
	appendAt(t, m, txnBatch(1, 0, 10))
	appendAt(t, m, txnBatch(2, 0, 11))
	appendAt(t, m, txnBatch(1, 1, 12))
	if got := m.FirstUnstableOffset(); got != 10 {
		t.Fatalf("first unstable offset %d, want 10", got)
	}
	m.Lock()
	done, ok := m.CompleteTxn(Marker{ProducerID: 1, ProducerEpoch: 0, CoordinatorEpoch: 3, Offset: 13})
	m.Unlock()
	if !ok || done != (CompletedTxn{ProducerID: 1, FirstOffset: 10, LastOffset: 13, IsAborted: true}) {
		t.Fatalf("completed %+v %v", done, ok)
	}
	if got := m.FirstUnstableOffset(); got != 11 {
		t.Errorf("first unstable offset %d after producer 1 aborted, want 11", got)
	}
	// Snapshots keep open transactions and coordinator epochs.
	dir := t.TempDir()
	if err := m.WriteSnapshot(dir, 14); err != nil {
		t.Fatal(err)
	}
	r := NewProducerStateManager()
	if _, err := r.LoadSnapshot(dir, 14); err != nil {
		t.Fatal(err)
	}
	if got := r.FirstUnstableOffset(); got != 11 {
		t.Errorf("restored first unstable offset %d, want 11", got)
	}
	r.Lock()
	defer r.Unlock()
	if err := r.CheckMarker(Marker{ProducerID: 1, ProducerEpoch: 0, CoordinatorEpoch: 2}); !errors.Is(err, ErrCoordinatorFenced) {
		t.Errorf("marker from an older coordinator: %v", err)
	}
	// A fencing marker bumps the epoch: the zombie is refused, the new
	// epoch starts at sequence 0.
	if err := r.CheckMarker(Marker{ProducerID: 2, ProducerEpoch: 1, CoordinatorEpoch: 3}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.CompleteTxn(Marker{ProducerID: 2, ProducerEpoch: 1, CoordinatorEpoch: 3, Offset: 15}); !ok {
		t.Error("producer 2's transaction was not open")
	}
	if _, err := r.Check(batch(2, 0, 1, 1, 16)); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Errorf("zombie after the fencing marker: %v", err)
	}
	if _, err := r.Check(batch(2, 1, 3, 1, 16)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Errorf("new epoch not at 0: %v", err)
	}
	if _, err := r.Check(batch(2, 1, 0, 1, 16)); err != nil {
		t.Errorf("new epoch at 0: %v", err)
	}
	if got := r.FirstUnstableOffset(); got != -1 {
		t.Errorf("first unstable offset %d with no open transaction", got)
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	m := NewProducerStateManager()
	m.Update(batch(1, 0, 0, 3, 0))
	m.Update(batch(2, 5, math.MaxInt32, 2, 3))
	f.Add(m.EncodeSnapshot())
	f.Add([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := DecodeSnapshot(b)
		if err != nil {
			return
		}
		r := NewProducerStateManager()
		for _, e := range entries {
			bm := e.Batches[0]
			r.Update(Batch{ProducerID: e.ProducerID, ProducerEpoch: e.ProducerEpoch, BaseSequence: bm.FirstSeq,
				LastSequence: bm.LastSeq, FirstOffset: bm.FirstOffset, LastOffset: bm.LastOffset, MaxTimestamp: bm.Timestamp})
		}
		if again, err := DecodeSnapshot(r.EncodeSnapshot()); err != nil || len(again) != len(uniqueIDs(entries)) {
			t.Errorf("re-encoded snapshot: %d entries, %v", len(again), err)
		}
	})
}

func uniqueIDs(es []ProducerStateEntry) map[int64]bool {
	out := make(map[int64]bool)
	for _, e := range es {
		out[e.ProducerID] = true
	}
	return out
}

func TestProducerIDsNeverReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	seen := map[int64]bool{}
	for run := 0; run < 3; run++ { // a "restart" each run
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := NewProducerIDManager(db)
		for i := 0; i < ProducerIDBlockSize+10; i++ {
			id, err := m.NextProducerID()
			if err != nil {
				t.Fatal(err)
			}
			if seen[id] {
				t.Fatalf("run %d: id %d handed out twice", run, id)
			}
			seen[id] = true
		}
		db.Close()
	}
}

// A remote manager hands out the blocks its allocator grants, in order,
// and asks for the next block only when one is spent.
func TestRemoteProducerIDBlocks(t *testing.T) {
	var calls int
	m := NewRemoteProducerIDManager(func() (int64, int64, error) {
		calls++
		return int64(calls) * 1000, 2, nil // blocks [1000,1001], [2000,2001]
	})
	var got []int64
	for range 4 {
		id, err := m.NextProducerID()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if want := []int64{1000, 1001, 2000, 2001}; !slices.Equal(got, want) || calls != 2 {
		t.Fatalf("ids %v after %d allocations, want %v after 2", got, calls, want)
	}
	failing := NewRemoteProducerIDManager(func() (int64, int64, error) { return 0, 0, errors.New("no controller") })
	if _, err := failing.NextProducerID(); err == nil {
		t.Fatal("an allocation failure must fail NextProducerID")
	}
}
