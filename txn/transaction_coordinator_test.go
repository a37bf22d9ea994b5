package txn

import (
	"errors"
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/kvlog"
	"github.com/kbroker/kbroker/internal/kvlog/kvlogtest"
)

var (
	t0 = TopicPartition{"t", 0}
	t1 = TopicPartition{"t", 1}
	u0 = TopicPartition{"u", 0}
)

func TestCommitHappyPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch := e.mustInit("tx")
	if epoch != 0 {
		t.Fatalf("first epoch %d, want 0", epoch)
	}
	wantCode(t, "add partitions", e.addPartitions(3, "tx", pid, epoch, t1, t0), nil)
	wantCode(t, "add partitions again", e.addPartitions(3, "tx", pid, epoch, u0, t0), nil)
	wantCode(t, "add offsets", e.addOffsets(3, "tx", pid, epoch, "g"), nil)
	if d := e.describe("tx"); d.State != "Ongoing" || len(d.Topics) != 2 || !reflect.DeepEqual(d.Topics[0].Partitions, []int32{0, 1}) || d.StartTimestamp != e.clock.Now().UnixMilli() {
		t.Fatalf("describe while ongoing: %+v", d)
	}
	wantCode(t, "end commit", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, nil)

	want := []markerCall{{pid, 0, 0, true, []TopicPartition{t0, t1, u0}, []string{"g"}}}
	if got := e.markers.Calls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	if d := e.describe("tx"); d.State != "CompleteCommit" || len(d.Topics) != 0 || d.ProducerEpoch != 0 {
		t.Fatalf("describe after commit: %+v", d)
	}
	if got := e.ends.get(); !reflect.DeepEqual(got, []string{"commit"}) {
		t.Fatalf("OnEnd %v", got)
	}

	// The next transaction, same epoch (transactions v1).
	wantCode(t, "add partitions next", e.addPartitions(3, "tx", pid, epoch, t0), nil)
	wantCode(t, "end abort", e.endTxn(3, "tx", pid, epoch, false).ErrorCode, nil)
	if got := e.markers.Calls(); len(got) != 2 || got[1].commit || !reflect.DeepEqual(got[1].partitions, []TopicPartition{t0}) || got[1].groups != nil {
		t.Fatalf("markers %+v", got)
	}
	if s := e.state("tx"); s != "CompleteAbort" {
		t.Fatalf("state %s", s)
	}
	if s := e.tc.Stats(); s["CompleteAbort"] != 1 || len(s) != 1 {
		t.Fatalf("stats %v", s)
	}
}

func TestRetriedEndTxn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch := e.mustInit("tx")
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0), nil)
	wantCode(t, "commit", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, nil)
	wantCode(t, "retried commit", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, nil)
	wantCode(t, "abort after commit", e.endTxn(3, "tx", pid, epoch, false).ErrorCode, kerr.InvalidTxnState)
	if n := len(e.markers.Calls()); n != 1 {
		t.Fatalf("%d marker writes, want 1", n)
	}

	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0), nil)
	wantCode(t, "abort", e.endTxn(3, "tx", pid, epoch, false).ErrorCode, nil)
	wantCode(t, "retried abort", e.endTxn(3, "tx", pid, epoch, false).ErrorCode, nil)
	wantCode(t, "commit after abort", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, kerr.InvalidTxnState)
}

func TestEndTxnWrongState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch := e.mustInit("tx")
	wantCode(t, "commit on Empty", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "abort on Empty", e.endTxn(3, "tx", pid, epoch, false).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "other producer id", e.endTxn(3, "tx", pid+1, epoch, true).ErrorCode, kerr.InvalidProducerIDMapping)
	wantCode(t, "unknown id", e.endTxn(3, "nope", pid, epoch, true).ErrorCode, kerr.InvalidProducerIDMapping)
	wantCode(t, "empty id", e.endTxn(3, "", pid, epoch, true).ErrorCode, kerr.InvalidRequest)
	wantCode(t, "add unknown id", e.addPartitions(3, "nope", pid, epoch, t0), kerr.InvalidProducerIDMapping)
	wantCode(t, "add other pid", e.addPartitions(3, "tx", pid+1, epoch, t0), kerr.InvalidProducerIDMapping)
	wantCode(t, "add empty id", e.addPartitions(3, "", pid, epoch, t0), kerr.InvalidRequest)
	wantCode(t, "offsets unknown id", e.addOffsets(3, "nope", pid, epoch, "g"), kerr.InvalidProducerIDMapping)
	if len(e.markers.Calls()) != 0 {
		t.Fatal("markers written")
	}
}

func TestAddPartitionsUnknownPartition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch := e.mustInit("tx")
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 3
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = "tx", pid, epoch
	req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: []int32{0, 9}}, {Topic: "missing", Partitions: []int32{0}}}
	resp := e.tc.AddPartitionsToTxn(req)
	got := [][]int16{{resp.Topics[0].Partitions[0].ErrorCode, resp.Topics[0].Partitions[1].ErrorCode}, {resp.Topics[1].Partitions[0].ErrorCode}}
	want := [][]int16{{kerr.OperationNotAttempted.Code, kerr.UnknownTopicOrPartition.Code}, {kerr.UnknownTopicOrPartition.Code}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("codes %v, want %v", got, want)
	}
	if s := e.state("tx"); s != "Empty" {
		t.Fatalf("state %s after a failed add", s)
	}
}

func TestZombieFencing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, old := e.mustInit("tx")
	wantCode(t, "zombie add", e.addPartitions(3, "tx", pid, old, t0), nil)
	// The new instance: its init aborts the zombie's transaction first.
	_, _, code := e.initPID("tx", 60000)
	wantCode(t, "init while ongoing", code, kerr.ConcurrentTransactions)
	pid2, epoch := e.mustInit("tx")
	if pid2 != pid || epoch <= old {
		t.Fatalf("new producer %d/%d, old %d/%d", pid2, epoch, pid, old)
	}
	wantCode(t, "zombie add v3", e.addPartitions(3, "tx", pid, old, t1), kerr.ProducerFenced)
	wantCode(t, "zombie add v1", e.addPartitions(1, "tx", pid, old, t1), kerr.InvalidProducerEpoch)
	wantCode(t, "zombie offsets v2", e.addOffsets(2, "tx", pid, old, "g"), kerr.ProducerFenced)
	wantCode(t, "zombie offsets v1", e.addOffsets(1, "tx", pid, old, "g"), kerr.InvalidProducerEpoch)
	wantCode(t, "zombie commit v3", e.endTxn(3, "tx", pid, old, true).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "zombie commit v1", e.endTxn(1, "tx", pid, old, true).ErrorCode, kerr.InvalidProducerEpoch)
	wantErr(t, "zombie produce", e.tc.VerifyPartition("tx", pid, old, t0, DefaultError), kerr.InvalidProducerEpoch)
	// The new instance works.
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t1), nil)
	wantCode(t, "commit", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, nil)
}

func TestInitWhileOngoingAbortsFirst(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		tv          int16
		markerEpoch int16 // the abort's
		retryEpoch  int16 // what the retried init gets
	}{
		{"transactions v1", 0, 1, 2},
		{"transactions v2", 2, 2, 3}, // fence, then the v2 end bumps again
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *Config) { c.TransactionVersion = tc.tv })
			pid, epoch := e.mustInit("tx")
			wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0, u0), nil)
			wantCode(t, "offsets", e.addOffsets(3, "tx", pid, epoch, "g"), nil)
			_, _, code := e.initPID("tx", 60000)
			wantCode(t, "init while ongoing", code, kerr.ConcurrentTransactions)
			want := []markerCall{{pid, tc.markerEpoch, 0, false, []TopicPartition{t0, u0}, []string{"g"}}}
			if got := e.markers.Calls(); !reflect.DeepEqual(got, want) {
				t.Fatalf("markers %+v, want %+v", got, want)
			}
			if s := e.state("tx"); s != "CompleteAbort" {
				t.Fatalf("state %s", s)
			}
			pid2, epoch2 := e.mustInit("tx")
			if pid2 != pid || epoch2 != tc.retryEpoch {
				t.Fatalf("retried init: %d/%d, want %d/%d", pid2, epoch2, pid, tc.retryEpoch)
			}
			if got := e.ends.get(); !reflect.DeepEqual(got, []string{"abort"}) {
				t.Fatalf("OnEnd %v", got)
			}
		})
	}
}

func TestInvalidTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.TransactionMaxTimeoutMs = 1000 })
	for _, ms := range []int32{0, -1, 1001, math.MaxInt32} {
		_, _, code := e.initPID("tx", ms)
		wantCode(t, "init", code, kerr.InvalidTransactionTimeout)
	}
	if _, _, code := e.initPID("tx", 1000); code != 0 {
		t.Fatalf("init at the max: %v", kerr.ErrorForCode(code))
	}
	_, _, code := e.initPID("", 1000)
	wantCode(t, "empty id", code, kerr.InvalidRequest)
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionTimeoutMillis = -1 // not checked without a transactional id
	if r := e.tc.InitProducerID(req); r.ErrorCode != 0 || r.ProducerID < 0 || r.ProducerEpoch != 0 {
		t.Fatalf("idempotent producer: %+v", r)
	}
}

func TestInitKIP360(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, _ := e.mustInit("tx")
	init := func(version int16, p int64, ep int16) *kmsg.InitProducerIDResponse {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version = version
		req.TransactionalID = strp("tx")
		req.TransactionTimeoutMillis = 60000
		req.ProducerID, req.ProducerEpoch = p, ep
		return e.tc.InitProducerID(req)
	}
	if r := init(4, pid, 0); r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != 1 {
		t.Fatalf("recover: %+v", r)
	}
	// The answer was lost: the retry gets the same epoch.
	if r := init(4, pid, 0); r.ErrorCode != 0 || r.ProducerEpoch != 1 {
		t.Fatalf("retry: %+v", r)
	}
	wantCode(t, "stale epoch", init(4, pid, 7).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "stale epoch v3", init(3, pid, 7).ErrorCode, kerr.InvalidProducerEpoch)
	wantCode(t, "other producer id", init(4, pid+5, 1).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "half set", init(4, -1, 1).ErrorCode, kerr.InvalidRequest)
	// A new transactional id with a client's old producer id (it lost its
	// state): it gets a fresh producer id.
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	req.TransactionalID = strp("fresh")
	req.TransactionTimeoutMillis = 60000
	req.ProducerID, req.ProducerEpoch = 77, 3
	if r := e.tc.InitProducerID(req); r.ErrorCode != 0 || r.ProducerID == 77 || r.ProducerEpoch != 0 {
		t.Fatalf("fresh: %+v", r)
	}
	// v2 ignores the fields.
	if r := init(2, 12345, 9); r.ErrorCode != 0 || r.ProducerEpoch != 2 {
		t.Fatalf("v2: %+v", r)
	}
}

func TestInitProducerIDAllocationFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.pids.mu.Lock()
	e.pids.err = errors.New("no block")
	e.pids.mu.Unlock()
	_, _, code := e.initPID("tx", 1000)
	wantCode(t, "init", code, kerr.UnknownServerError)
	if d := e.describe("tx"); d.ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("describe: %+v", d)
	}
}

func TestTimeoutAbort(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch, code := e.initPID("tx", 1000)
	wantCode(t, "init", code, nil)
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0), nil)
	e.clock.Advance(1000 * time.Millisecond)
	e.tc.abortTimedOutTransactions()
	if s := e.state("tx"); s != "Ongoing" {
		t.Fatalf("aborted at its timeout: %s", s)
	}
	e.clock.Advance(time.Millisecond)
	e.tc.abortTimedOutTransactions()
	want := []markerCall{{pid, epoch + 1, 0, false, []TopicPartition{t0}, nil}}
	if got := e.markers.Calls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	if s := e.state("tx"); s != "CompleteAbort" {
		t.Fatalf("state %s", s)
	}
	if got := e.ends.get(); !reflect.DeepEqual(got, []string{"abort/timeout"}) {
		t.Fatalf("OnEnd %v", got)
	}
	// The producer is fenced.
	wantCode(t, "commit after timeout", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "add after timeout", e.addPartitions(3, "tx", pid, epoch, t0), kerr.ProducerFenced)
}

// TestTimeoutAbortLoop lets the cleanup ticker find the transaction.
func TestTimeoutAbortLoop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.AbortTimedOutTransactionCleanupIntervalMs = 2 })
	pid, epoch, _ := e.initPID("tx", 1000)
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0), nil)
	e.clock.Advance(2 * time.Second)
	waitFor(t, "the timeout abort", func() bool { return e.state("tx") == "CompleteAbort" })
}

func TestTimeoutAbortTransactionsV2(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.TransactionVersion = 2 })
	pid, epoch, _ := e.initPID("tx", 1000)
	if err := e.tc.AddPartitionImplicitly("tx", pid, epoch, t0); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Second)
	e.tc.abortTimedOutTransactions()
	if got := e.markers.Calls(); len(got) != 1 || got[0].epoch != epoch+2 || got[0].commit {
		t.Fatalf("markers %+v", got)
	}
	// Neither a retry (one behind) nor current: fenced.
	r := e.endTxn(5, "tx", pid, epoch, false)
	wantCode(t, "abort after timeout", r.ErrorCode, kerr.ProducerFenced)
	if r.ProducerID != -1 || r.ProducerEpoch != -1 {
		t.Fatalf("error response carries producer %d/%d", r.ProducerID, r.ProducerEpoch)
	}
}

func TestRestartMidPrepareCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.MarkerRetryBackoff, c.MarkerRetryBackoffMax = time.Hour, time.Hour })
	pid, epoch := e.mustInit("tx")
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0, t1), nil)
	wantCode(t, "offsets", e.addOffsets(3, "tx", pid, epoch, "g"), nil)
	e.markers.setFail(errors.New("log dir offline"))
	// The commit is decided once PrepareCommit is stored: success.
	wantCode(t, "commit", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, nil)
	if s := e.state("tx"); s != "PrepareCommit" {
		t.Fatalf("state %s", s)
	}
	wantCode(t, "add while prepared", e.addPartitions(3, "tx", pid, epoch, t0), kerr.ConcurrentTransactions)
	wantCode(t, "commit retry while prepared", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, kerr.ConcurrentTransactions)
	wantCode(t, "abort while prepared", e.endTxn(3, "tx", pid, epoch, false).ErrorCode, kerr.ConcurrentTransactions)
	wantCode(t, "other producer while prepared", e.addPartitions(3, "tx", pid+1, epoch, t0), kerr.ConcurrentTransactions)
	wantCode(t, "end by other producer while prepared", e.endTxn(3, "tx", pid+1, epoch, true).ErrorCode, kerr.InvalidProducerIDMapping)
	_, _, code := e.initPID("tx", 60000)
	wantCode(t, "init while prepared", code, kerr.ConcurrentTransactions)

	e.markers.setFail(nil)
	e.reopen() // New completes it before returning
	calls := e.markers.Calls()
	want := markerCall{pid, epoch, 0, true, []TopicPartition{t0, t1}, []string{"g"}}
	if len(calls) != 2 || !reflect.DeepEqual(calls[1], want) {
		t.Fatalf("markers %+v, want the first written again as %+v", calls, want)
	}
	if s := e.state("tx"); s != "CompleteCommit" {
		t.Fatalf("state after restart %s", s)
	}
	wantCode(t, "retried commit after restart", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, nil)
	e.reopen()
	if s := e.state("tx"); s != "CompleteCommit" {
		t.Fatalf("state after second restart %s", s)
	}
}

func TestMarkerRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch := e.mustInit("tx")
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0), nil)
	e.markers.setFail(errors.New("transient"))
	wantCode(t, "abort", e.endTxn(3, "tx", pid, epoch, false).ErrorCode, nil)
	waitFor(t, "a retry", func() bool { return len(e.markers.Calls()) >= 3 })
	e.markers.setFail(nil)
	waitFor(t, "the retried markers", func() bool { return e.state("tx") == "CompleteAbort" })
	for _, c := range e.markers.Calls() {
		if c.commit || c.pid != pid || c.epoch != epoch {
			t.Fatalf("marker %+v", c)
		}
	}
}

func TestRestartWithOngoing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch, _ := e.initPID("tx", 5000)
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0, u0), nil)
	wantCode(t, "offsets", e.addOffsets(3, "tx", pid, epoch, "g"), nil)
	start := e.clock.Now().UnixMilli()
	e.reopen()
	if len(e.markers.Calls()) != 0 {
		t.Fatal("markers written on load of an Ongoing transaction")
	}
	d := e.describe("tx")
	if d.State != "Ongoing" || d.ProducerID != pid || d.ProducerEpoch != epoch || d.StartTimestamp != start || d.TimeoutMillis != 5000 || len(d.Topics) != 2 {
		t.Fatalf("after restart: %+v", d)
	}
	// It is still aborted by its timeout.
	e.clock.Advance(6 * time.Second)
	e.tc.abortTimedOutTransactions()
	if got := e.markers.Calls(); len(got) != 1 || got[0].commit || !reflect.DeepEqual(got[0].groups, []string{"g"}) {
		t.Fatalf("markers %+v", got)
	}
}

func TestRestartThenCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch := e.mustInit("tx")
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0), nil)
	e.reopen()
	wantCode(t, "commit", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, nil)
	if got := e.markers.Calls(); len(got) != 1 || !got[0].commit {
		t.Fatalf("markers %+v", got)
	}
	// A new producer after a restart still bumps the stored epoch.
	if _, epoch2 := e.mustInit("tx"); epoch2 != epoch+1 {
		t.Fatalf("epoch %d after restart, want %d", epoch2, epoch+1)
	}
}

func TestVerifyPartitionAndGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch := e.mustInit("tx")
	wantErr(t, "not added, old client", e.tc.VerifyPartition("tx", pid, epoch, t0, DefaultError), kerr.InvalidTxnState)
	wantErr(t, "not added, v11 client", e.tc.VerifyPartition("tx", pid, epoch, t0, GenericErrorSupported), kerr.TransactionAbortable)
	wantErr(t, "group not added", e.tc.VerifyGroup("tx", pid, epoch, "g", DefaultError), kerr.InvalidTxnState)
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0), nil)
	wantCode(t, "offsets", e.addOffsets(3, "tx", pid, epoch, "g"), nil)
	wantErr(t, "added", e.tc.VerifyPartition("tx", pid, epoch, t0, DefaultError), nil)
	wantErr(t, "other partition", e.tc.VerifyPartition("tx", pid, epoch, t1, GenericErrorSupported), kerr.TransactionAbortable)
	wantErr(t, "group added", e.tc.VerifyGroup("tx", pid, epoch, "g", GenericErrorSupported), nil)
	wantErr(t, "other group", e.tc.VerifyGroup("tx", pid, epoch, "h", DefaultError), kerr.InvalidTxnState)
	wantErr(t, "other epoch", e.tc.VerifyPartition("tx", pid, epoch+1, t0, DefaultError), kerr.InvalidProducerEpoch)
	wantErr(t, "group other epoch", e.tc.VerifyGroup("tx", pid, epoch+1, "g", DefaultError), kerr.InvalidProducerEpoch)
	wantErr(t, "other producer", e.tc.VerifyPartition("tx", pid+1, epoch, t0, DefaultError), kerr.InvalidProducerIDMapping)
	wantErr(t, "unknown id", e.tc.VerifyPartition("nope", pid, epoch, t0, DefaultError), kerr.InvalidProducerIDMapping)
	wantErr(t, "empty id", e.tc.VerifyPartition("", pid, epoch, t0, DefaultError), kerr.InvalidRequest)

	// The v4 VerifyOnly request another broker would send.
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 4
	req.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{
		{TransactionalID: "tx", ProducerID: pid, ProducerEpoch: epoch, VerifyOnly: true,
			Topics: []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "t", Partitions: []int32{0, 1}}}},
		{TransactionalID: "tx", ProducerID: pid, ProducerEpoch: epoch + 1, VerifyOnly: true,
			Topics: []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "t", Partitions: []int32{0}}}},
	}
	resp := e.tc.AddPartitionsToTxn(req)
	got := []int16{resp.Transactions[0].Topics[0].Partitions[0].ErrorCode, resp.Transactions[0].Topics[0].Partitions[1].ErrorCode, resp.Transactions[1].Topics[0].Partitions[0].ErrorCode}
	if want := []int16{0, kerr.TransactionAbortable.Code, kerr.ProducerFenced.Code}; !reflect.DeepEqual(got, want) {
		t.Fatalf("verify-only codes %v, want %v", got, want)
	}

	// While the markers are being written.
	block := make(chan struct{})
	blocked := &blockingMarkers{release: block, entered: make(chan struct{}, 1)}
	e.tc.markers = blocked
	done := make(chan int16)
	go func() { done <- e.endTxn(3, "tx", pid, epoch, true).ErrorCode }()
	<-blocked.entered
	wantErr(t, "while writing markers", e.tc.VerifyPartition("tx", pid, epoch, t0, DefaultError), kerr.ConcurrentTransactions)
	close(block)
	wantCode(t, "commit", <-done, nil)
	wantErr(t, "after the commit", e.tc.VerifyPartition("tx", pid, epoch, t0, DefaultError), kerr.InvalidTxnState)

	for v, want := range map[int16]TransactionSupportedOperation{3: DefaultError, 10: DefaultError, 11: GenericErrorSupported, 12: AddPartition, 13: AddPartition} {
		if got := ProduceOperation(v); got != want {
			t.Errorf("ProduceOperation(%d) = %d, want %d", v, got, want)
		}
	}
	for v, want := range map[int16]TransactionSupportedOperation{0: DefaultError, 3: DefaultError, 4: GenericErrorSupported, 5: AddPartition} {
		if got := TxnOffsetCommitOperation(v); got != want {
			t.Errorf("TxnOffsetCommitOperation(%d) = %d, want %d", v, got, want)
		}
	}
}

// blockingMarkers holds WriteTxnMarkers until release is closed.
type blockingMarkers struct {
	release <-chan struct{}
	entered chan struct{}
}

func (b *blockingMarkers) WriteTxnMarkers(int64, int16, int32, bool, []TopicPartition, []string) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	return nil
}

func TestTransactionsV2(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.TransactionVersion = 2 })
	pid, epoch := e.mustInit("tx")

	// Produce v12 and TxnOffsetCommit v5 add their partition and group.
	wantErr(t, "implicit add", e.tc.VerifyPartition("tx", pid, epoch, t0, AddPartition), nil)
	wantErr(t, "implicit add again", e.tc.AddPartitionImplicitly("tx", pid, epoch, t0), nil)
	wantErr(t, "implicit group", e.tc.VerifyGroup("tx", pid, epoch, "g", AddPartition), nil)
	wantErr(t, "missing partition", e.tc.AddPartitionImplicitly("tx", pid, epoch, TopicPartition{"t", 99}), kerr.UnknownTopicOrPartition)
	wantErr(t, "fenced implicit add", e.tc.AddPartitionImplicitly("tx", pid, epoch+1, t1), kerr.InvalidProducerEpoch)

	r := e.endTxn(5, "tx", pid, epoch, true)
	if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != epoch+1 {
		t.Fatalf("commit: %+v", r)
	}
	want := []markerCall{{pid, epoch + 1, 0, true, []TopicPartition{t0}, []string{"g"}}}
	if got := e.markers.Calls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	// A retry (epoch one behind) gets the same answer, and nothing is
	// written again.
	if r := e.endTxn(5, "tx", pid, epoch, true); r.ErrorCode != 0 || r.ProducerEpoch != epoch+1 {
		t.Fatalf("retried commit: %+v", r)
	}
	wantCode(t, "retried commit as abort", e.endTxn(5, "tx", pid, epoch, false).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "commit with nothing open", e.endTxn(5, "tx", pid, epoch+1, true).ErrorCode, kerr.InvalidTxnState)
	if len(e.markers.Calls()) != 1 {
		t.Fatal("markers written again")
	}

	// The next transaction at the new epoch; the old one is fenced.
	epoch++
	wantErr(t, "old epoch", e.tc.AddPartitionImplicitly("tx", pid, epoch-1, t1), kerr.InvalidProducerEpoch)
	wantErr(t, "next transaction", e.tc.AddPartitionImplicitly("tx", pid, epoch, t1), nil)
	if r := e.endTxn(5, "tx", pid, epoch, false); r.ErrorCode != 0 || r.ProducerEpoch != epoch+1 {
		t.Fatalf("abort: %+v", r)
	}
	epoch++
	// An abort with nothing open still bumps (the client may not know).
	if r := e.endTxn(5, "tx", pid, epoch, false); r.ErrorCode != 0 || r.ProducerEpoch != epoch+1 {
		t.Fatalf("empty abort: %+v", r)
	}
	if n := len(e.markers.Calls()); n != 2 {
		t.Fatalf("%d marker writes, want 2 (an empty abort writes none)", n)
	}
	epoch++
	if s := e.state("tx"); s != "CompleteAbort" {
		t.Fatalf("state %s", s)
	}

	// From Empty: abort bumps, commit is INVALID_TXN_STATE, a retry (one
	// behind) is fenced.
	pid2, e2 := e.mustInit("tx")
	if pid2 != pid || e2 != epoch+1 {
		t.Fatalf("init %d/%d", pid2, e2)
	}
	wantCode(t, "commit on Empty", e.endTxn(5, "tx", pid, e2, true).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "old epoch on Empty", e.endTxn(5, "tx", pid, e2-1, false).ErrorCode, kerr.ProducerFenced)
	if r := e.endTxn(5, "tx", pid, e2, false); r.ErrorCode != 0 || r.ProducerEpoch != e2+1 {
		t.Fatalf("abort on Empty: %+v", r)
	}

	// v4 clients on the same coordinator keep their epoch.
	pid3, e3 := e.mustInit("v1")
	wantCode(t, "add", e.addPartitions(3, "v1", pid3, e3, u0), nil)
	if r := e.endTxn(4, "v1", pid3, e3, true); r.ErrorCode != 0 || r.ProducerID != -1 || r.ProducerEpoch != -1 {
		t.Fatalf("v4 end: %+v", r)
	}
	if d := e.describe("v1"); d.ProducerEpoch != e3 {
		t.Fatalf("v4 end bumped the epoch: %+v", d)
	}
}

// storeRecord writes a record as a previous run would have left it.
func storeRecord(t *testing.T, e *env, id string, rec txnRecord) {
	t.Helper()
	e.close()
	db, err := bolt.Open(e.dir+"/meta.db", 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = kvlog.Local(db).Update(putTxn(id, rec))
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	e.open()
}

func TestEpochExhaustion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.TransactionVersion = 2 })
	const pid = 500
	storeRecord(t, e, "tx", txnRecord{ProducerID: pid, PrevProducerID: pid, NextProducerID: -1, ProducerEpoch: math.MaxInt16 - 2,
		LastProducerEpoch: -1, TxnTimeoutMs: 60000, State: stateCompleteCommit, TxnStartTimestamp: 1, TxnLastUpdateTimestamp: 1})
	p, epoch := e.mustInit("tx")
	if p != pid || epoch != math.MaxInt16-1 {
		t.Fatalf("init %d/%d", p, epoch)
	}
	// The epoch is exhausted: the next init rotates the producer id.
	p2, epoch2 := e.mustInit("tx")
	if p2 == pid || epoch2 != 0 {
		t.Fatalf("rotation %d/%d", p2, epoch2)
	}

	// Transactions v2: the end at the exhausted epoch moves to a new
	// producer id; markers go out at MaxInt16 for the old one.
	storeRecord(t, e, "v2", txnRecord{ProducerID: pid, PrevProducerID: pid, NextProducerID: -1, ProducerEpoch: math.MaxInt16 - 1,
		LastProducerEpoch: math.MaxInt16 - 2, TxnTimeoutMs: 60000, State: stateOngoing, Partitions: []TopicPartition{t0},
		TxnStartTimestamp: e.clock.Now().UnixMilli(), TxnLastUpdateTimestamp: 1, ClientTransactionVersion: tv2})
	r := e.endTxn(5, "v2", pid, math.MaxInt16-1, true)
	if r.ErrorCode != 0 || r.ProducerID == pid || r.ProducerEpoch != 0 {
		t.Fatalf("end at exhausted epoch: %+v", r)
	}
	newPID := r.ProducerID
	if got := e.markers.Calls(); len(got) != 1 || got[0].pid != pid || got[0].epoch != math.MaxInt16 {
		t.Fatalf("markers %+v", got)
	}
	// Its retry is recognized and answered with the new producer.
	if r := e.endTxn(5, "v2", pid, math.MaxInt16-1, true); r.ErrorCode != 0 || r.ProducerID != newPID || r.ProducerEpoch != 0 {
		t.Fatalf("retry across the rotation: %+v", r)
	}
	wantErr(t, "new producer", e.tc.AddPartitionImplicitly("v2", newPID, 0, t1), nil)
	e.reopen()
	if d := e.describe("v2"); d.ProducerID != newPID || d.State != "Ongoing" {
		t.Fatalf("after restart: %+v", d)
	}
}

func TestListAndDescribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pa, ea := e.mustInit("app-a")
	pb, eb := e.mustInit("app-b")
	e.mustInit("other")
	wantCode(t, "add a", e.addPartitions(3, "app-a", pa, ea, t0), nil)
	e.clock.Advance(10 * time.Second)
	wantCode(t, "add b", e.addPartitions(3, "app-b", pb, eb, t1), nil)
	wantCode(t, "end b", e.endTxn(3, "app-b", pb, eb, true).ErrorCode, nil)

	list := func(version int16, states []string, pids []int64, duration int64, pattern *string) *kmsg.ListTransactionsResponse {
		req := kmsg.NewPtrListTransactionsRequest()
		req.Version = version
		req.StateFilters, req.ProducerIDFilters, req.DurationFilterMillis, req.TransactionalIDPattern = states, pids, duration, pattern
		return e.tc.ListTransactions(req)
	}
	ids := func(r *kmsg.ListTransactionsResponse) []string {
		var out []string
		for _, s := range r.TransactionStates {
			out = append(out, s.TransactionalID+"="+s.TransactionState)
		}
		return out
	}
	for _, c := range []struct {
		name string
		resp *kmsg.ListTransactionsResponse
		want []string
	}{
		{"all", list(0, nil, nil, -1, nil), []string{"app-a=Ongoing", "app-b=CompleteCommit", "other=Empty"}},
		{"by state", list(0, []string{"Ongoing", "Empty"}, nil, -1, nil), []string{"app-a=Ongoing", "other=Empty"}},
		{"by producer", list(0, nil, []int64{pb}, -1, nil), []string{"app-b=CompleteCommit"}},
		{"running longer than 5s", list(1, []string{"Ongoing", "CompleteCommit"}, nil, 5000, nil), []string{"app-a=Ongoing"}},
		{"duration ignored before v1", list(0, []string{"Ongoing"}, nil, 1e12, nil), []string{"app-a=Ongoing"}},
		{"pattern", list(2, nil, nil, -1, strp("app-.")), []string{"app-a=Ongoing", "app-b=CompleteCommit"}},
		{"pattern matches whole id", list(2, nil, nil, -1, strp("app")), nil},
		{"empty pattern", list(2, nil, nil, -1, strp("")), []string{"app-a=Ongoing", "app-b=CompleteCommit", "other=Empty"}},
	} {
		if c.resp.ErrorCode != 0 || !reflect.DeepEqual(ids(c.resp), c.want) {
			t.Errorf("%s: %v (code %d), want %v", c.name, ids(c.resp), c.resp.ErrorCode, c.want)
		}
	}
	if r := list(0, []string{"Bogus", "Ongoing"}, nil, -1, nil); !reflect.DeepEqual(r.UnknownStateFilters, []string{"Bogus"}) || len(r.TransactionStates) != 1 {
		t.Errorf("unknown state filter: %+v", r)
	}
	wantCode(t, "bad pattern", list(2, nil, nil, -1, strp("(")).ErrorCode, kerr.InvalidRegularExpression)

	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{"app-a", "nope", ""}
	resp := e.tc.DescribeTransactions(req)
	a := resp.TransactionStates[0]
	if a.ErrorCode != 0 || a.State != "Ongoing" || a.ProducerID != pa || a.ProducerEpoch != ea || a.TimeoutMillis != 60000 ||
		a.StartTimestamp != e.clock.Now().UnixMilli()-10000 || len(a.Topics) != 1 || a.Topics[0].Topic != "t" || !reflect.DeepEqual(a.Topics[0].Partitions, []int32{0}) {
		t.Errorf("describe app-a: %+v", a)
	}
	wantCode(t, "describe unknown", resp.TransactionStates[1].ErrorCode, kerr.TransactionalIDNotFound)
	wantCode(t, "describe empty", resp.TransactionStates[2].ErrorCode, kerr.InvalidRequest)
	if d := e.describe("other"); d.StartTimestamp != -1 || d.State != "Empty" {
		t.Errorf("describe other: %+v", d)
	}
}

func TestExpireTransactionalIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.TransactionalIDExpirationMs = 60000 })
	e.mustInit("idle")
	p, ep := e.mustInit("busy")
	wantCode(t, "add", e.addPartitions(3, "busy", p, ep, t0), nil)
	e.clock.Advance(30 * time.Second)
	e.mustInit("recent")
	e.clock.Advance(31 * time.Second)
	e.tc.removeExpiredTransactionalIDs()
	if s := e.state("idle"); s != kerr.TransactionalIDNotFound.Error() {
		t.Fatalf("idle: %s", s)
	}
	if s := e.state("busy"); s != "Ongoing" {
		t.Fatalf("an open transaction expired: %s", s)
	}
	if s := e.state("recent"); s != "Empty" {
		t.Fatalf("recent: %s", s)
	}
	e.reopen()
	if s := e.state("idle"); s != kerr.TransactionalIDNotFound.Error() {
		t.Fatalf("idle after restart: %s", s)
	}
	// The id starts over with a new producer id.
	if p2, ep2 := e.mustInit("idle"); ep2 != 0 || p2 == p {
		t.Fatalf("reinit %d/%d", p2, ep2)
	}
}

func TestStoreFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch := e.mustInit("tx")
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0), nil)
	e.db.setFail(true)
	wantCode(t, "add failing", e.addPartitions(3, "tx", pid, epoch, t1), kerr.CoordinatorNotAvailable)
	_, _, code := e.initPID("new", 1000)
	wantCode(t, "init failing", code, kerr.CoordinatorNotAvailable)
	if d := e.describe("new"); d.ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("a failed first init left %+v", d)
	}
	// A fence whose write fails keeps its bump, and the next one does not
	// bump again (the bumped epoch never reached a client).
	_, _, code = e.initPID("tx", 1000)
	wantCode(t, "fence failing", code, kerr.CoordinatorNotAvailable)
	if d := e.describe("tx"); d.State != "Ongoing" || d.ProducerEpoch != epoch+1 {
		t.Fatalf("after a failed fence: %+v", d)
	}
	e.db.setFail(false)
	_, _, code = e.initPID("tx", 1000)
	wantCode(t, "fence", code, kerr.ConcurrentTransactions)
	if got := e.markers.Calls(); len(got) != 1 || got[0].epoch != epoch+1 || !reflect.DeepEqual(got[0].partitions, []TopicPartition{t0}) {
		t.Fatalf("markers %+v", got)
	}
	if _, ep := e.mustInit("tx"); ep != epoch+2 {
		t.Fatalf("epoch %d, want %d", ep, epoch+2)
	}
}

func TestConcurrentAdds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch := e.mustInit("tx")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for p := range int32(4) {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := e.tc.AddPartitionImplicitly("tx", pid, epoch, TopicPartition{"t", p}); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			if code := e.addOffsets(3, "tx", pid, epoch, string(rune('a'+p))); code != 0 {
				errs <- kerr.ErrorForCode(code)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantCode(t, "commit", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, nil)
	got := e.markers.Calls()
	if len(got) != 1 || len(got[0].partitions) != 4 || !reflect.DeepEqual(got[0].groups, []string{"a", "b", "c", "d"}) {
		t.Fatalf("markers %+v", got)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	pid, epoch := e.mustInit("tx")
	tc := e.tc
	tc.Close()
	_, _, code := e.initPID("tx", 1000)
	wantCode(t, "init", code, kerr.CoordinatorNotAvailable)
	wantCode(t, "add", e.addPartitions(3, "tx", pid, epoch, t0), kerr.CoordinatorNotAvailable)
	wantCode(t, "end", e.endTxn(3, "tx", pid, epoch, true).ErrorCode, kerr.CoordinatorNotAvailable)
	wantErr(t, "verify", tc.VerifyPartition("tx", pid, epoch, t0, DefaultError), kerr.CoordinatorNotAvailable)
	wantCode(t, "list", tc.ListTransactions(kmsg.NewPtrListTransactionsRequest()).ErrorCode, kerr.CoordinatorNotAvailable)
	tc.Close() // twice is fine
}

// A transactions-v2 produce to several partitions adds them in one stored
// change; the per-partition checks that follow store nothing more.
func TestAddPartitionsImplicitlyIsOneWrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.TransactionVersion = 2 })
	e.rec = &kvlogtest.Recorder{}
	e.reopen()
	pid, epoch := e.mustInit("tx")
	_, before := e.rec.Changes()

	wantErr(t, "batched add", e.tc.AddPartitionsImplicitly("tx", pid, epoch, []TopicPartition{t0, t1, u0}), nil)
	for _, tp := range []TopicPartition{t0, t1, u0} {
		wantErr(t, "verify "+tp.Topic, e.tc.VerifyPartition("tx", pid, epoch, tp, AddPartition), nil)
	}
	if _, after := e.rec.Changes(); after-before != 1 {
		t.Fatalf("%d stored changes for one batched add and its checks, want 1", after-before)
	}
	wantErr(t, "missing partition", e.tc.AddPartitionsImplicitly("tx", pid, epoch, []TopicPartition{t0, {"t", 99}}), kerr.UnknownTopicOrPartition)
	wantErr(t, "fenced", e.tc.AddPartitionsImplicitly("tx", pid, epoch+1, []TopicPartition{t0, t1}), kerr.InvalidProducerEpoch)

	r := e.endTxn(5, "tx", pid, epoch, true)
	if r.ErrorCode != 0 {
		t.Fatalf("commit: %+v", r)
	}
	calls := e.markers.Calls()
	if len(calls) != 1 || len(calls[0].partitions) != 3 {
		t.Fatalf("markers %+v, want one call for the three partitions", calls)
	}
}
