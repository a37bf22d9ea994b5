package txn

import (
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/kvlog"
	"github.com/kbroker/kbroker/internal/kvlog/kvlogtest"
)

// fakePIDs hands out 1000, 1001, ...
type fakePIDs struct {
	mu   sync.Mutex
	next int64
	err  error
}

func (f *fakePIDs) NextProducerID() (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	if f.next == 0 {
		f.next = 1000
	}
	f.next++
	return f.next - 1, nil
}

// fakeParts is a topic table: topic -> partition count.
type fakeParts map[string]int32

func (f fakeParts) PartitionExists(topic string, p int32) bool {
	n, ok := f[topic]
	return ok && p >= 0 && p < n
}

type markerCall struct {
	pid              int64
	epoch            int16
	coordinatorEpoch int32
	commit           bool
	partitions       []TopicPartition
	groups           []string
}

// fakeMarkers records every call; while fail is set, calls fail. A call
// first waits for gate, if set; onCall sees each successful call.
type fakeMarkers struct {
	mu     sync.Mutex
	calls  []markerCall
	fail   error
	gate   chan struct{}
	onCall func(markerCall)
}

func (f *fakeMarkers) WriteTxnMarkers(pid int64, epoch int16, coordinatorEpoch int32, commit bool, partitions []TopicPartition, groups []string) error {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := markerCall{pid, epoch, coordinatorEpoch, commit, partitions, groups}
	f.calls = append(f.calls, c)
	if f.fail == nil && f.onCall != nil {
		f.onCall(c)
	}
	return f.fail
}

func (f *fakeMarkers) setGate(gate chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = gate
}

func (f *fakeMarkers) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeMarkers) Calls() []markerCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// failingDB fails every Update while fail is set.
type failingDB struct {
	*bolt.DB
	mu   sync.Mutex
	fail bool
}

var errDisk = errors.New("disk on fire")

func (d *failingDB) Update(fn func(*bolt.Tx) error) error {
	d.mu.Lock()
	fail := d.fail
	d.mu.Unlock()
	if fail {
		return errDisk
	}
	return d.DB.Update(fn)
}

func (d *failingDB) setFail(fail bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = fail
}

// env is a coordinator with its fakes on a bbolt file in dir; reopen
// closes it and starts another on the same file.
type env struct {
	t       testing.TB
	dir     string
	journal string // Config.StateJournal, if the tune sets it
	tune    func(*Config)
	db      *failingDB
	rec     *kvlogtest.Recorder // if set, writes go through it
	tc      *TransactionCoordinator
	pids    *fakePIDs
	markers *fakeMarkers
	clock   *fakeClock
	ends    *endLog
}

// endLog records Config.OnEnd calls.
type endLog struct {
	mu   sync.Mutex
	ends []string
}

func (l *endLog) add(commit, timedOut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := "abort"
	if commit {
		s = "commit"
	}
	if timedOut {
		s += "/timeout"
	}
	l.ends = append(l.ends, s)
}

func (l *endLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ends)
}

func newEnv(t testing.TB, tune func(*Config)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), tune: tune, pids: &fakePIDs{}, markers: &fakeMarkers{}, clock: newFakeClock(), ends: &endLog{}}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	db, err := bolt.Open(filepath.Join(e.dir, "meta.db"), 0o600, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = &failingDB{DB: db}
	cfg := DefaultConfig()
	cfg.TransactionVersion = 0
	cfg.MarkerRetryBackoff = time.Millisecond
	cfg.MarkerRetryBackoffMax = 5 * time.Millisecond
	cfg.OnEnd = e.ends.add
	if e.tune != nil {
		e.tune(&cfg)
	}
	var kdb kvlog.DB = kvlog.Local(e.db)
	if e.rec != nil {
		e.rec.DB = e.db
		kdb = e.rec
	}
	tc, err := New(kdb, e.pids, fakeParts{"t": 4, "u": 2}, e.markers, cfg, nil, e.clock.Now)
	if err != nil {
		db.Close()
		e.t.Fatal(err)
	}
	e.tc = tc
}

func (e *env) close() {
	if e.tc != nil {
		e.tc.Close()
		e.db.DB.Close()
		e.tc = nil
	}
}

func (e *env) reopen() {
	e.t.Helper()
	e.close()
	e.open()
}

// Requests.

func strp(s string) *string { return &s }

func (e *env) initPID(id string, timeoutMs int32) (int64, int16, int16) {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 5
	req.TransactionalID = strp(id)
	req.TransactionTimeoutMillis = timeoutMs
	resp := e.tc.InitProducerID(req)
	return resp.ProducerID, resp.ProducerEpoch, resp.ErrorCode
}

// mustInit initializes id with a 60s timeout.
func (e *env) mustInit(id string) (int64, int16) {
	e.t.Helper()
	pid, epoch, code := e.initPID(id, 60000)
	if code != 0 {
		e.t.Fatalf("InitProducerID(%q): %v", id, kerr.ErrorForCode(code))
	}
	return pid, epoch
}

// addPartitions sends AddPartitionsToTxn v3 (or v; < 4) and returns the
// code of every partition, which must agree.
func (e *env) addPartitions(version int16, id string, pid int64, epoch int16, tps ...TopicPartition) int16 {
	e.t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = version
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, pid, epoch
	for _, tp := range tps {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = tp.Topic, []int32{tp.Partition}
		req.Topics = append(req.Topics, rt)
	}
	resp := e.tc.AddPartitionsToTxn(req)
	code := int16(-2)
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if code != -2 && code != rp.ErrorCode {
				e.t.Fatalf("partition codes differ: %+v", resp.Topics)
			}
			code = rp.ErrorCode
		}
	}
	return code
}

func (e *env) addOffsets(version int16, id string, pid int64, epoch int16, group string) int16 {
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.Version = version
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = id, pid, epoch, group
	return e.tc.AddOffsetsToTxn(req).ErrorCode
}

func endTxnRequest(version int16, id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnRequest {
	req := kmsg.NewPtrEndTxnRequest()
	req.Version = version
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
	return req
}

// endTxn sends EndTxn and waits for its markers, written in the background.
func (e *env) endTxn(version int16, id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnResponse {
	resp := e.tc.EndTxn(endTxnRequest(version, id, pid, epoch, commit))
	e.tc.awaitMarkers(id)
	return resp
}

// awaitMarkers waits until the markers of id's EndTxn, written in the
// background, are done (or have failed and wait for a retry).
func (tc *TransactionCoordinator) awaitMarkers(id string) {
	tc.mu.Lock()
	tc.completedLocked(id)
	tc.mu.Unlock()
}

func (e *env) describe(id string) kmsg.DescribeTransactionsResponseTransactionState {
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	return e.tc.DescribeTransactions(req).TransactionStates[0]
}

func (e *env) state(id string) string {
	e.t.Helper()
	d := e.describe(id)
	if d.ErrorCode != 0 {
		return kerr.ErrorForCode(d.ErrorCode).Error()
	}
	return d.State
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantCode(t testing.TB, what string, got int16, want *kerr.Error) {
	t.Helper()
	wantCode := int16(0)
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: got %v, want %v", what, kerr.ErrorForCode(got), kerr.ErrorForCode(wantCode))
	}
}

func wantErr(t testing.TB, what string, got error, want *kerr.Error) {
	t.Helper()
	if want == nil {
		if got != nil {
			t.Fatalf("%s: got %v, want nil", what, got)
		}
		return
	}
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}
