package integration

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnProduce runs one transaction of values on topic and ends it.
func txnProduce(t *testing.T, cl *kgo.Client, topic string, commit bool, values ...string) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctx(t), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	if err := cl.EndTransaction(ctx(t), kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
}

// consumeAll reads topic from the start until it has read up to the
// partition's end for its isolation level (HW or LSO).
func consumeAll(t *testing.T, addr, topic string, opts ...kgo.Opt) []string {
	t.Helper()
	cl := newClient(t, addr, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond)}, opts...)...)
	var out []string
	c, cancel := context.WithTimeout(ctx(t), 3*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(c)
		if c.Err() != nil {
			return out
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("consume %s: %v", topic, err) })
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
}

// Committed records are visible to read_committed consumers, aborted ones
// only to read_uncommitted; an open transaction holds the last stable
// offset back.
func TestTransactionsCommitAndAbort(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	createTopic(t, b.admin(t), "txn-vis", 1, nil)
	cl := b.client(t, kgo.TransactionalID("vis"), kgo.DefaultProduceTopic("txn-vis"))

	txnProduce(t, cl, "txn-vis", true, "c1", "c2")
	txnProduce(t, cl, "txn-vis", false, "a1", "a2")
	txnProduce(t, cl, "txn-vis", true, "c3")

	// An open transaction: its record is in the log but not stable.
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceSync(t, cl, &kgo.Record{Topic: "txn-vis", Value: []byte("open")})

	committed := consumeAll(t, b.Addr(), "txn-vis", kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if fmt.Sprint(committed) != "[c1 c2 c3]" {
		t.Errorf("read_committed: %v", committed)
	}
	uncommitted := consumeAll(t, b.Addr(), "txn-vis")
	if fmt.Sprint(uncommitted) != "[c1 c2 a1 a2 c3 open]" {
		t.Errorf("read_uncommitted: %v", uncommitted)
	}
	adm := b.admin(t)
	ends, err := adm.ListEndOffsets(ctx(t), "txn-vis")
	if err != nil {
		t.Fatal(err)
	}
	committedEnds, err := adm.ListCommittedOffsets(ctx(t), "txn-vis")
	if err != nil {
		t.Fatal(err)
	}
	// 2 + marker, 2 + marker, 1 + marker, then the open record at 8.
	if hw, _ := ends.Lookup("txn-vis", 0); hw.Offset != 9 {
		t.Errorf("high watermark %d, want 9", hw.Offset)
	}
	if lso, _ := committedEnds.Lookup("txn-vis", 0); lso.Offset != 8 {
		t.Errorf("last stable offset %d, want 8", lso.Offset)
	}
	if err := cl.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	committed = consumeAll(t, b.Addr(), "txn-vis", kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if fmt.Sprint(committed) != "[c1 c2 c3 open]" {
		t.Errorf("read_committed after the last commit: %v", committed)
	}
	ms := scrape(t, b.HTTPAddr())
	ms.expect(t, 3, "kbroker_transactions_total", "outcome", "commit")
	ms.expect(t, 1, "kbroker_transactions_total", "outcome", "abort")
}

// A second producer with the same transactional id fences the first: its
// open transaction is aborted and it can no longer write or commit.
func TestTransactionsZombieFenced(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	createTopic(t, b.admin(t), "txn-zombie", 1, nil)
	zombie := b.client(t, kgo.TransactionalID("z"))
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceSync(t, zombie, &kgo.Record{Topic: "txn-zombie", Value: []byte("zombie")})

	fresh := b.client(t, kgo.TransactionalID("z"))
	txnProduce(t, fresh, "txn-zombie", true, "fresh")

	err := zombie.ProduceSync(ctx(t), &kgo.Record{Topic: "txn-zombie", Value: []byte("zombie-2")}).FirstErr()
	if err == nil {
		err = zombie.EndTransaction(ctx(t), kgo.TryCommit)
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("zombie: %v, want fenced", err)
	}
	if got := consumeAll(t, b.Addr(), "txn-zombie", kgo.FetchIsolationLevel(kgo.ReadCommitted())); fmt.Sprint(got) != "[fresh]" {
		t.Errorf("read_committed: %v", got)
	}
}

// EndTxn is answered before its markers are written, so the next
// transaction's first produce often arrives while they are. The broker
// waits for them, as Kafka retries the verification, rather than answer a
// retriable error that kgo meets with a backoff and a metadata refresh (5 s
// a transaction, before this was fixed): each transaction below costs one
// Produce request.
func TestNextTransactionWaitsForMarkers(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	createTopic(t, b.admin(t), "txn-next", 1, nil)
	produces := &requestCounter{key: 0}
	cl := b.client(t, kgo.TransactionalID("next"), kgo.WithHooks(produces))
	const n = 40
	var want []string
	for i := range n {
		want = append(want, strconv.Itoa(i))
		txnProduce(t, cl, "txn-next", true, want[i])
	}
	if got := produces.n.Load(); got != n {
		t.Errorf("%d Produce requests for %d one-record transactions: some were retried", got, n)
	}
	if got := consumeAll(t, b.Addr(), "txn-next", kgo.FetchIsolationLevel(kgo.ReadCommitted())); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("read_committed: %v", got)
	}
}

// A single node keeps transaction state in a journal fsynced by the log
// flush policy; its fsyncs are counted in kbroker_log_flush_seconds, as
// Kafka counts __transaction_state's flushes with the other logs'.
func TestTransactionStateFsyncsAreMetered(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		props  map[string]string
		fsyncs bool
	}{
		{nil, false}, // log.flush.interval.messages defaults to never
		{map[string]string{"log.flush.interval.messages": "1"}, true},
	} {
		b := startBroker(t, c.props)
		cl := b.client(t)
		// The first lookup creates the coordinator's topic, whose
		// partitions may flush; only InitProducerId falls in the window.
		find := kmsg.NewPtrFindCoordinatorRequest()
		find.CoordinatorType, find.CoordinatorKey = 1, "metered"
		if _, err := find.RequestWith(ctx(t), cl); err != nil {
			t.Fatal(err)
		}
		before, _ := scrape(t, b.HTTPAddr()).value("kbroker_log_flush_seconds")
		init := kmsg.NewPtrInitProducerIDRequest()
		init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr("metered"), 60_000
		resp, err := init.RequestWith(ctx(t), cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err != nil {
			t.Fatalf("%v: InitProducerId: %v", c.props, err)
		}
		after, found := scrape(t, b.HTTPAddr()).value("kbroker_log_flush_seconds")
		switch {
		case !found:
			t.Fatal("kbroker_log_flush_seconds is not in /metrics")
		case c.fsyncs && after <= before:
			t.Errorf("%v: InitProducerId stored state with no flush observed (%v before, %v after)", c.props, before, after)
		case !c.fsyncs && after != before:
			t.Errorf("%v: %v flushes observed for InitProducerId, want none", c.props, after-before)
		}
	}
}

// requestCounter counts the requests of one API key a client writes.
type requestCounter struct {
	key int16
	n   atomic.Int64
}

func (c *requestCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key == c.key {
		c.n.Add(1)
	}
}

// A transaction open across a broker restart can still be committed, and
// one left open past its timeout is aborted by the coordinator.
func TestTransactionsSurviveRestartAndTimeOut(t *testing.T) {
	t.Parallel()
	props := map[string]string{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100"}
	b := startBroker(t, props)
	createTopic(t, b.admin(t), "txn-restart", 1, nil)
	cl := b.client(t, kgo.TransactionalID("r"))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceSync(t, cl, &kgo.Record{Topic: "txn-restart", Value: []byte("before")})
	b = b.restartSamePort(t)
	produceSync(t, cl, &kgo.Record{Topic: "txn-restart", Value: []byte("after")})
	if err := cl.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
		t.Fatalf("commit after the restart: %v", err)
	}
	if got := consumeAll(t, b.Addr(), "txn-restart", kgo.FetchIsolationLevel(kgo.ReadCommitted())); fmt.Sprint(got) != "[before after]" {
		t.Errorf("read_committed: %v", got)
	}

	// transaction.timeout.ms 1s: the coordinator aborts and fences.
	slow := b.client(t, kgo.TransactionalID("slow"), kgo.TransactionTimeout(time.Second))
	if err := slow.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceSync(t, slow, &kgo.Record{Topic: "txn-restart", Value: []byte("slow")})
	waitFor(t, "the timed-out transaction to be aborted", func() error {
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = []string{"slow"}
		resp := direct(t, b.client(t), req).(*kmsg.DescribeTransactionsResponse)
		if st := resp.TransactionStates[0].State; st != "CompleteAbort" {
			return fmt.Errorf("state %s", st)
		}
		return nil
	})
	if err := slow.EndTransaction(ctx(t), kgo.TryCommit); err == nil {
		t.Error("the timed-out transaction committed")
	}
	if got := consumeAll(t, b.Addr(), "txn-restart", kgo.FetchIsolationLevel(kgo.ReadCommitted())); fmt.Sprint(got) != "[before after]" {
		t.Errorf("read_committed after the timeout: %v", got)
	}
	scrape(t, b.HTTPAddr()).expect(t, 1, "kbroker_transactions_total", "outcome", "timeout")
}

// WriteTxnMarkers, as an admin tool uses it to abort a hanging transaction:
// an ABORT marker for the producer's epoch ends its transaction in the
// partition, the last stable offset moves past it and read_committed
// consumers drop its records; a marker of an older epoch is refused.
func TestWriteTxnMarkersAbortsHangingTransaction(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	createTopic(t, b.admin(t), "txn-hanging", 1, nil)
	cl := b.client(t, kgo.TransactionalID("hanging"))
	// A first transaction: under transactions v2 its end bumps the epoch,
	// so the hanging one has an older epoch to refuse.
	txnProduce(t, cl, "txn-hanging", false, "aborted")
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceSync(t, cl, &kgo.Record{Topic: "txn-hanging", Value: []byte("hanging")})
	produceSync(t, b.client(t), &kgo.Record{Topic: "txn-hanging", Value: []byte("plain")})

	dreq := kmsg.NewPtrDescribeProducersRequest()
	dt := kmsg.NewDescribeProducersRequestTopic()
	dt.Topic, dt.Partitions = "txn-hanging", []int32{0}
	dreq.Topics = append(dreq.Topics, dt)
	ps := direct(t, b.client(t), dreq).(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0].ActiveProducers
	var pid int64 = -1
	var epoch int16
	for _, p := range ps {
		if p.CurrentTxnStartOffset >= 0 {
			pid, epoch = p.ProducerID, int16(p.ProducerEpoch)
		}
	}
	if pid < 0 {
		t.Fatalf("no producer with a transaction open: %+v", ps)
	}

	marker := func(epoch int16) int16 {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.Committed = pid, epoch, false
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = "txn-hanging", []int32{0}
		m.Topics = append(m.Topics, mt)
		req.Markers = append(req.Markers, m)
		return direct(t, b.client(t), req).(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode
	}
	if epoch < 1 {
		t.Fatalf("epoch %d after a transaction v2 ended", epoch)
	}
	if code := marker(epoch - 1); code != kerr.InvalidProducerEpoch.Code {
		t.Errorf("marker of an older epoch: %v", kerr.ErrorForCode(code))
	}
	if code := marker(epoch); code != 0 {
		t.Fatalf("abort marker: %v", kerr.ErrorForCode(code))
	}
	if got := consumeAll(t, b.Addr(), "txn-hanging", kgo.FetchIsolationLevel(kgo.ReadCommitted())); fmt.Sprint(got) != "[plain]" {
		t.Errorf("read_committed after the abort marker: %v", got)
	}
}
