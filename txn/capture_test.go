package txn

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/kvlog"
	"github.com/kbroker/kbroker/internal/kvlog/kvlogtest"
)

// Every write the coordinator makes to transaction state is captured: the
// changes of every committed transaction, replayed in order onto an empty
// store, give the store the coordinator wrote, byte for byte, which is what
// a follower applying the replicated log ends up with.
func TestEveryWriteIsCaptured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.TransactionalIDExpirationMs = 60000 })
	e.rec = &kvlogtest.Recorder{}
	e.reopen() // from here on, start-up writes included, through e.rec

	// Empty -> Ongoing -> PrepareCommit -> CompleteCommit, then an abort.
	pid, epoch := e.mustInit("a")
	wantCode(t, "add", e.addPartitions(3, "a", pid, epoch, t0, t1), nil)
	wantCode(t, "offsets", e.addOffsets(3, "a", pid, epoch, "g"), nil)
	wantCode(t, "commit", e.endTxn(3, "a", pid, epoch, true).ErrorCode, nil)
	wantCode(t, "add next", e.addPartitions(3, "a", pid, epoch, u0), nil)
	wantCode(t, "abort", e.endTxn(3, "a", pid, epoch, false).ErrorCode, nil)

	// A transaction aborted at its timeout, the producer fenced.
	pb, eb, code := e.initPID("b", 1000)
	wantCode(t, "init b", code, nil)
	wantCode(t, "add b", e.addPartitions(3, "b", pb, eb, t0), nil)
	e.clock.Advance(1001 * time.Millisecond)
	e.tc.abortTimedOutTransactions()

	// InitProducerID while a transaction is ongoing aborts it first.
	pc, ec := e.mustInit("c")
	wantCode(t, "add c", e.addPartitions(3, "c", pc, ec, t0), nil)
	_, _, code = e.initPID("c", 60000)
	wantCode(t, "init c while ongoing", code, kerr.ConcurrentTransactions)
	e.mustInit("c")

	// A restart with a transaction open, which then commits.
	pd, ed := e.mustInit("d")
	wantCode(t, "add d", e.addPartitions(3, "d", pd, ed, t0), nil)
	e.reopen()
	wantCode(t, "commit d", e.endTxn(3, "d", pd, ed, true).ErrorCode, nil)

	// An idle transactional id expires (a delete).
	e.mustInit("idle")
	e.clock.Advance(61 * time.Second)
	e.mustInit("recent")
	e.tc.removeExpiredTransactionalIDs()
	if s := e.state("idle"); s != kerr.TransactionalIDNotFound.Error() {
		t.Fatalf("idle: %s", s)
	}

	e.tc.Close() // whatever is queued is written
	changes, commits := e.rec.Changes()
	t.Logf("%d transactions, %d changes", commits, len(changes))
	replayed := kvlogtest.Replay(t, changes)
	kvlogtest.SameContents(t, e.db, replayed)

	// A coordinator started from the replayed store knows what one started
	// from the original knows.
	tc, err := New(kvlog.Local(replayed), e.pids, fakeParts{"t": 4, "u": 2}, e.markers, DefaultConfig(), nil, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	e.reopen()
	for _, id := range []string{"a", "b", "c", "d", "idle", "recent"} {
		if got, want := describeIn(tc, id), describeIn(e.tc, id); got != want {
			t.Errorf("%s on the replayed store: %s, want %s", id, got, want)
		}
	}
}

// describeIn is what DescribeTransactions says of id: its state, producer
// id and epoch, or its error.
func describeIn(tc *TransactionCoordinator, id string) string {
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	d := tc.DescribeTransactions(req).TransactionStates[0]
	if d.ErrorCode != 0 {
		return kerr.ErrorForCode(d.ErrorCode).Error()
	}
	return fmt.Sprintf("%s pid %d epoch %d", d.State, d.ProducerID, d.ProducerEpoch)
}
