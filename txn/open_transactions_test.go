package txn

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/journal"
)

// fakeLogs models what the partitions' producer states say about open
// transactions: a transactional write opens one (produce), a marker of the
// producer at the same or a higher epoch ends it.
type fakeLogs struct {
	mu   sync.Mutex
	open map[TopicPartition]map[int64]int16 // partition -> producer id -> epoch
}

func (f *fakeLogs) produce(tp TopicPartition, pid int64, epoch int16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.open == nil {
		f.open = map[TopicPartition]map[int64]int16{}
	}
	if f.open[tp] == nil {
		f.open[tp] = map[int64]int16{}
	}
	if _, ok := f.open[tp][pid]; !ok {
		f.open[tp][pid] = epoch
	}
}

func (f *fakeLogs) marker(c markerCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tp := range c.partitions {
		if e, ok := f.open[tp][c.pid]; ok && e <= c.epoch {
			delete(f.open[tp], c.pid)
		}
	}
}

func (f *fakeLogs) list() []OpenTransaction {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []OpenTransaction
	for tp, ps := range f.open {
		for pid, epoch := range ps {
			out = append(out, OpenTransaction{tp, pid, epoch})
		}
	}
	return out
}

func (f *fakeLogs) isOpen(tp TopicPartition) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.open[tp]) > 0
}

// newOneNodeEnv is an env whose coordinator sees every partition
// (Config.OpenTransactions) and keeps its state in a journal, as on a
// single node.
func newOneNodeEnv(t *testing.T, tv int16) (*env, *fakeLogs) {
	logs := &fakeLogs{}
	path := filepath.Join(t.TempDir(), "transaction-state.journal")
	e := newEnv(t, func(c *Config) {
		c.OpenTransactions = logs.list
		c.TransactionVersion = tv
		c.StateJournal = path
	})
	e.journal = path
	e.markers.onCall = logs.marker
	return e, logs
}

// crash stops the coordinator as kill -9 would: the next one opens the
// store as it was, without what Close would store.
func (e *env) crash() {
	e.t.Helper()
	path := filepath.Join(e.dir, "meta.db")
	var snap []byte
	if e.journal != "" {
		path = e.journal
		var err error
		if snap, err = os.ReadFile(path); err != nil {
			e.t.Fatal(err)
		}
	} else {
		var buf bytes.Buffer
		if err := e.db.View(func(tx *bolt.Tx) error { _, err := tx.WriteTo(&buf); return err }); err != nil {
			e.t.Fatal(err)
		}
		snap = buf.Bytes()
	}
	e.close()
	if err := os.WriteFile(path, snap, 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// stored reads id's record as the store has it.
func (e *env) stored(id string) txnRecord {
	e.t.Helper()
	var v []byte
	if e.journal != "" {
		v = e.journaled()[id]
	} else if err := e.db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(transactionsBucket).Get([]byte(id)))
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	rec, err := decodeTxnRecord(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// journaled is what the journal holds now, read from a copy.
func (e *env) journaled() map[string][]byte {
	e.t.Helper()
	b, err := os.ReadFile(e.journal)
	if err != nil {
		e.t.Fatal(err)
	}
	cp := filepath.Join(e.t.TempDir(), "copy")
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	j, live, err := journal.Open(cp, journal.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	j.Close()
	return live
}

// On one node a transaction of partitions only is not stored until it
// ends; Close stores it, so a clean restart keeps it.
func TestOngoingKeptInMemoryOnOneNode(t *testing.T) {
	t.Parallel()
	e, logs := newOneNodeEnv(t, 0)
	pid, epoch := e.mustInit("tx")
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0, t1), nil)
	if st := e.state("tx"); st != "Ongoing" {
		t.Fatalf("state %s", st)
	}
	if st := e.stored("tx").State; st != stateEmpty {
		t.Fatalf("stored %v before the end, want Empty", st)
	}
	logs.produce(t0, pid, epoch)
	e.reopen()
	if st := e.state("tx"); st != "Ongoing" {
		t.Fatalf("state %s after a clean restart", st)
	}
	wantCode(t, "commit", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, nil)
	if got := e.markers.Calls(); len(got) != 1 || !got[0].commit || len(got[0].partitions) != 2 {
		t.Fatalf("markers %+v", got)
	}
	if logs.isOpen(t0) {
		t.Fatal("t0 still open after the commit")
	}

	// With a group the Ongoing is stored, with the partitions so far.
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t1), nil)
	wantCode(t, "offsets", e.addOffsets(3, "tx", pid, epoch, "g"), nil)
	if r := e.stored("tx"); r.State != stateOngoing || len(r.Partitions) != 1 || len(r.Groups) != 1 {
		t.Fatalf("stored %+v, want Ongoing with t1 and g", r)
	}
}

// A transaction kept in memory and lost in a crash is aborted at start, at
// a bumped epoch: its producer cannot commit what lost part of itself.
func TestCrashAbortsTransactionKeptInMemory(t *testing.T) {
	t.Parallel()
	e, logs := newOneNodeEnv(t, 0)
	pid, epoch := e.mustInit("tx")
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0, t1), nil)
	logs.produce(t0, pid, epoch)
	logs.produce(t1, pid, epoch)
	e.crash()
	got := e.markers.Calls()
	if len(got) != 1 || got[0].commit || got[0].pid != pid || got[0].epoch <= epoch || !slices.Equal(got[0].partitions, []TopicPartition{t0, t1}) {
		t.Fatalf("markers at start %+v, want one ABORT on t0, t1 above epoch %d", got, epoch)
	}
	if logs.isOpen(t0) || logs.isOpen(t1) {
		t.Fatal("a partition is still open")
	}
	if st := e.state("tx"); st != "CompleteAbort" {
		t.Fatalf("state %s", st)
	}
	wantCode(t, "commit by the old producer", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, kerr.ProducerFenced)
	// A new producer instance goes on.
	if _, epoch2 := e.mustInit("tx"); epoch2 <= got[0].epoch {
		t.Fatalf("epoch %d after the abort at %d", epoch2, got[0].epoch)
	}
}

// A stored Ongoing (it has a group) gains at start the partitions it added
// in memory before the crash, and commits them.
func TestCrashKeepsStoredOngoingWithItsPartitions(t *testing.T) {
	t.Parallel()
	e, logs := newOneNodeEnv(t, 0)
	pid, epoch := e.mustInit("tx")
	wantCode(t, "offsets", e.addOffsets(3, "tx", pid, epoch, "g"), nil)
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t1), nil)
	logs.produce(t1, pid, epoch)
	e.crash()
	if got := e.markers.Calls(); len(got) != 0 {
		t.Fatalf("markers at start %+v", got)
	}
	wantCode(t, "commit", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, nil)
	got := e.markers.Calls()
	if len(got) != 1 || !got[0].commit || !slices.Equal(got[0].partitions, []TopicPartition{t1}) || !slices.Equal(got[0].groups, []string{"g"}) {
		t.Fatalf("markers %+v, want COMMIT on t1 and g", got)
	}
}

// Under transactions v2 the next transaction may start before the
// previous one's Complete is stored. A crash then finds the Prepare: its
// markers are not written where the next transaction is open at the
// markers' epoch, and that transaction is aborted.
func TestCrashAfterPrepareWithNextTransactionOpen(t *testing.T) {
	t.Parallel()
	e, logs := newOneNodeEnv(t, 2)
	pid, epoch := e.mustInit("tx")
	wantErr(t, "add", e.tc.AddPartitionsImplicitly("tx", pid, epoch, []TopicPartition{t0, t1}), nil)
	logs.produce(t0, pid, epoch)
	logs.produce(t1, pid, epoch)
	resp := e.endTxn(5, "tx", pid, epoch, true)
	wantCode(t, "commit", resp.ErrorCode, nil)
	next := resp.ProducerEpoch
	if r := e.stored("tx"); r.State != statePrepareCommit {
		t.Fatalf("stored %v after the commit, want PrepareCommit (Complete is lazy)", r.State)
	}
	wantErr(t, "next add", e.tc.AddPartitionsImplicitly("tx", pid, next, []TopicPartition{t0}), nil)
	logs.produce(t0, pid, next)
	e.crash()

	got := e.markers.Calls()
	if len(got) != 3 {
		t.Fatalf("markers %+v, want the commit, its rewrite without t0, and an abort of t0", got)
	}
	if c := got[1]; !c.commit || c.epoch != next || !slices.Equal(c.partitions, []TopicPartition{t1}) {
		t.Errorf("rewritten commit %+v, want t1 only at epoch %d", c, next)
	}
	if c := got[2]; c.commit || c.epoch <= next || !slices.Equal(c.partitions, []TopicPartition{t0}) {
		t.Errorf("abort %+v, want t0 above epoch %d", c, next)
	}
	if logs.isOpen(t0) {
		t.Fatal("t0 still open")
	}
	wantCode(t, "commit by the old producer", e.endTxn(5, "tx", pid, next, true).ErrorCode, kerr.ProducerFenced)
}

// A transactions-v1 end does not bump the epoch: its Complete is stored
// before the next transaction, kept in memory, starts.
func TestV1CompleteStoredBeforeNextTransaction(t *testing.T) {
	t.Parallel()
	e, logs := newOneNodeEnv(t, 0)
	pid, epoch := e.mustInit("tx")
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0), nil)
	logs.produce(t0, pid, epoch)
	wantCode(t, "commit", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, nil)
	wantCode(t, "next add", e.addPartitions(3, "tx", pid, epoch, t0), nil)
	if st := e.stored("tx").State; st != stateCompleteCommit {
		t.Fatalf("stored %v once the next transaction started, want CompleteCommit", st)
	}
	logs.produce(t0, pid, epoch)
	e.crash()
	got := e.markers.Calls()
	if len(got) != 2 || got[1].commit || got[1].epoch <= epoch {
		t.Fatalf("markers %+v, want the commit then an abort of the next transaction", got)
	}
}

// EndTxn is answered once its Prepare is stored; the producer's next add
// waits for the markers.
func TestEndTxnAnsweredBeforeMarkers(t *testing.T) {
	t.Parallel()
	e, _ := newOneNodeEnv(t, 2)
	pid, epoch := e.mustInit("tx")
	wantErr(t, "add", e.tc.AddPartitionsImplicitly("tx", pid, epoch, []TopicPartition{t0}), nil)
	gate := make(chan struct{})
	e.markers.setGate(gate)
	req := endTxnRequest(5, "tx", pid, epoch, true)
	resp := e.tc.EndTxn(req)
	wantCode(t, "commit", resp.ErrorCode, nil)
	if st := e.state("tx"); st != "PrepareCommit" {
		t.Fatalf("state %s while the markers wait", st)
	}
	wantErr(t, "verification meanwhile", e.tc.VerifyPartition("tx", pid, resp.ProducerEpoch, t0, AddPartition), kerr.ConcurrentTransactions)
	added := make(chan error, 1)
	go func() { added <- e.tc.AddPartitionsImplicitly("tx", pid, resp.ProducerEpoch, []TopicPartition{t0}) }()
	select {
	case err := <-added:
		t.Fatalf("the next add did not wait for the markers: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	e.markers.setGate(nil)
	close(gate)
	if err := <-added; err != nil {
		t.Fatalf("next add: %v", err)
	}
	if st := e.state("tx"); st != "Ongoing" {
		t.Fatalf("state %s", st)
	}
}

// State that a version without the journal kept in meta.db moves into the
// journal at start, replacing what the journal held (a move cut short by
// a crash is redone), and leaves meta.db; the journal alone then keeps it.
func TestStateMovesFromMetaDBToJournal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch := e.mustInit("old")
	wantCode(t, "add", e.addPartitions(3, "old", pid, epoch, t0), nil)
	e.close()

	path := filepath.Join(e.dir, "transaction-state.journal")
	j, _, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stale := txnRecord{ProducerID: 9, PrevProducerID: -1, NextProducerID: -1, LastProducerEpoch: -1, TxnTimeoutMs: 60000, State: stateEmpty}
	if err := <-j.Put("stale", encodeTxnRecord(stale)); err != nil {
		t.Fatal(err)
	}
	j.Close()

	e.journal = path
	e.tune = func(c *Config) { c.StateJournal = path }
	e.open()
	if st := e.state("old"); st != "Ongoing" {
		t.Fatalf("moved state %s, want Ongoing", st)
	}
	if d := e.describe("stale"); d.ErrorCode == 0 {
		t.Fatalf("the journal's own record survived the move: %+v", d)
	}
	if err := e.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(transactionsBucket) != nil {
			t.Error("meta.db still has the transactions bucket")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if d := e.describe("stale"); d.ErrorCode == 0 {
		t.Fatalf("the journal's own record is back after a restart: %+v", d)
	}
	wantCode(t, "commit after the move", e.endTxn(3, "old", pid, epoch, true).ErrorCode, nil)
	if got := e.markers.Calls(); len(got) != 1 || !got[0].commit || !slices.Equal(got[0].partitions, []TopicPartition{t0}) {
		t.Fatalf("markers %+v, want COMMIT on t0", got)
	}
}
