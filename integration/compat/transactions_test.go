package compat

import (
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// A sarama transactional producer commits, aborts, commits again. A
// read_committed consumer sees only the committed records; a
// read_uncommitted one sees the aborted ones too. Neither sees the COMMIT
// and ABORT control batches as messages, though each takes an offset. While
// a transaction is open, ListOffsets at read_committed stops at its first
// record (the last stable offset).
func TestTransactionalProducerCommitAbort(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	const topic, txnID = "txn-commit-abort", "commit-abort"
	createTopic(t, addr, topic, 1)

	p := newSyncProducer(t, addr, producerConfig(txnID))
	if !p.IsTransactional() {
		t.Fatal("producer with a transaction id is not transactional")
	}
	committed1, aborted, committed2 := numbered("committed", 0, 5), numbered("aborted", 0, 5), numbered("committed", 5, 10)

	txnOp(t, "BeginTxn", p.BeginTxn)
	send(t, p, messages(topic, 0, committed1...)) // offsets 0-4
	txnOp(t, "CommitTxn", p.CommitTxn)            // marker at 5

	txnOp(t, "BeginTxn", p.BeginTxn)
	send(t, p, messages(topic, 0, aborted...)) // offsets 6-10
	txnOp(t, "AbortTxn", p.AbortTxn)           // marker at 11

	txnOp(t, "BeginTxn", p.BeginTxn)
	send(t, p, messages(topic, 0, committed2...)) // offsets 12-16
	// The third transaction is still open: its records are below the high
	// watermark but above the last stable offset.
	if lso := latestOffset(t, addr, topic, 0, sarama.ReadCommitted); lso != 12 {
		t.Errorf("ListOffsets latest at read_committed with a transaction open at 12: %d, want 12", lso)
	}
	if hwm := latestOffset(t, addr, topic, 0, sarama.ReadUncommitted); hwm != 17 {
		t.Errorf("ListOffsets latest at read_uncommitted: %d, want 17", hwm)
	}
	txnOp(t, "CommitTxn", p.CommitTxn) // marker at 17

	// A plain record after all three: once a read_committed consumer has it,
	// every transaction before it has been decided.
	sendPlain(t, addr, topic, 0, "end") // offset 18

	got := readUntil(t, addr, topic, 0, sarama.ReadCommitted, "end")
	want := slices.Concat(committed1, committed2, []string{"end"})
	if !slices.Equal(values(got), want) {
		t.Errorf("read_committed: %v,\nwant %v", values(got), want)
	}
	wantOffsets := []int64{0, 1, 2, 3, 4, 12, 13, 14, 15, 16, 18}
	if !slices.Equal(offsets(got), wantOffsets) {
		t.Errorf("read_committed offsets %v, want %v (a control batch between transactions)", offsets(got), wantOffsets)
	}

	got = readUntil(t, addr, topic, 0, sarama.ReadUncommitted, "end")
	want = slices.Concat(committed1, aborted, committed2, []string{"end"})
	if !slices.Equal(values(got), want) {
		t.Errorf("read_uncommitted: %v,\nwant %v", values(got), want)
	}
	wantOffsets = []int64{0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 18}
	if !slices.Equal(offsets(got), wantOffsets) {
		t.Errorf("read_uncommitted offsets %v, want %v", offsets(got), wantOffsets)
	}

	admin := newAdmin(t, addr)
	states, err := admin.DescribeTransactions([]string{txnID})
	if err != nil {
		t.Fatalf("describe transactions: %v", err)
	}
	if s := states[txnID]; s.ErrorCode != sarama.ErrNoError || s.TransactionState != "CompleteCommit" || s.ProducerID < 0 || len(s.Topics) != 0 {
		t.Errorf("describe transaction %s: %+v, want CompleteCommit with a producer id and no partitions", txnID, s)
	}
	listed, err := admin.ListTransactions(nil, nil, -1)
	if err != nil {
		t.Fatalf("list transactions: %v", err)
	}
	if len(listed) != 1 || listed[0].TransactionalID != txnID || listed[0].ProducerID != states[txnID].ProducerID || listed[0].TransactionState != "CompleteCommit" {
		t.Errorf("list transactions: %+v, want only %s (CompleteCommit, producer id %d)", listed, txnID, states[txnID].ProducerID)
	}
}

// A read_committed fetch parked at the last stable offset returns when the
// transaction commits, not when its MaxWaitTime runs out: Kafka's
// ReplicaManager tries to complete delayed fetches after every append,
// COMMIT markers included, and a read_committed DelayedFetch counts bytes up
// to the last stable offset.
func TestReadCommittedFetchReturnsOnCommit(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	const topic = "txn-wake"
	const maxWait = 10 * time.Second
	createTopic(t, addr, topic, 1)

	p := newSyncProducer(t, addr, producerConfig("wake"))
	txnOp(t, "BeginTxn", p.BeginTxn)
	send(t, p, messages(topic, 0, "open-0", "open-1"))

	cfg := newConfig("")
	cfg.Version = txnVersion
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.MaxWaitTime = maxWait
	consumer, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	// Not Close: it waits out the next fetch, parked for maxWait. Closing
	// the consumer (its client) right after ends that fetch.
	defer pc.AsyncClose()
	// Long enough for the fetch to be parked.
	select {
	case m := <-pc.Messages():
		t.Fatalf("read_committed consumed %s (offset %d) of an open transaction", m.Value, m.Offset)
	case err := <-pc.Errors():
		t.Fatalf("consume: %v", err)
	case <-time.After(300 * time.Millisecond):
	}

	committed := time.Now()
	txnOp(t, "CommitTxn", p.CommitTxn)
	var got []string
	for len(got) < 2 {
		select {
		case m := <-pc.Messages():
			got = append(got, string(m.Value))
		case err := <-pc.Errors():
			t.Fatalf("consume: %v", err)
		case <-time.After(waitFor):
			t.Fatalf("after the commit: %v within %v", got, waitFor)
		}
	}
	if elapsed := time.Since(committed); elapsed > maxWait/2 {
		t.Errorf("committed records reached the parked read_committed fetch %v after the commit; its MaxWaitTime is %v", elapsed, maxWait)
	}
	if !slices.Equal(got, []string{"open-0", "open-1"}) {
		t.Errorf("after the commit: %v, want [open-0 open-1]", got)
	}
}

// latestOffset sends ListOffsets for the latest offset of partition p at
// the given isolation level: the high watermark at read_uncommitted, the
// last stable offset at read_committed. (sarama's Client.GetOffset always
// asks at read_uncommitted.)
func latestOffset(t *testing.T, addr, topic string, p int32, isolation sarama.IsolationLevel) int64 {
	t.Helper()
	cfg := newConfig("")
	cfg.Version = txnVersion
	client, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()
	leader, err := client.Leader(topic, p)
	if err != nil {
		t.Fatalf("leader of %s/%d: %v", topic, p, err)
	}
	req := sarama.NewOffsetRequest(txnVersion)
	req.IsolationLevel = isolation
	req.AddBlock(topic, p, sarama.OffsetNewest, 1)
	resp, err := leader.GetAvailableOffsets(req)
	if err != nil {
		t.Fatalf("ListOffsets %s/%d: %v", topic, p, err)
	}
	b := resp.GetBlock(topic, p)
	if b == nil || b.Err != sarama.ErrNoError {
		t.Fatalf("ListOffsets %s/%d: %+v", topic, p, b)
	}
	return b.Offset
}
