package compat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// Exactly-once read-process-write with sarama: a copier reads topic in and
// writes each record to the same partition of out, in transactions that
// also commit, for its group, the offset after the records they copy
// (AddMessageToTxn: AddOffsetsToTxn and TxnOffsetCommit before EndTxn).
// Before every transaction the copier resumes from the group's committed
// offset, fetched as sarama's OffsetManager does at read_committed
// (OffsetFetch with RequireStable, KIP-447), as a restarted copier would.
// One transaction is aborted after part of its batch is written, and
// retried from the same committed offset. At the end out holds each record
// of in exactly once, in order, at read_committed, and the group's committed
// offsets are in's end offsets.
func TestExactlyOnceCopyWithSarama(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	const in, out, group, txnID = "eos-in", "eos-out", "eos-copier", "eos-copier"
	const partitions, perPartition, batch = 2, 23, 5 // the last batch of each partition is short
	createTopic(t, addr, in, partitions)
	createTopic(t, addr, out, partitions)
	want := make([][]string, partitions)
	for p := range int32(partitions) {
		want[p] = numbered(fmt.Sprintf("p%d", p), 0, perPartition)
		sendPlain(t, addr, in, p, want[p]...)
	}

	cfg := newConfig("")
	cfg.Version = txnVersion
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	cfg.Consumer.Offsets.AutoCommit.Enable = false // offsets go only through transactions
	client, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer consumer.Close()
	producer := newSyncProducer(t, addr, producerConfig(txnID))

	// copyBatch copies up to batch records of partition p from offset from
	// in one transaction. With abortAfter > 0 it aborts the transaction
	// once that many records are written.
	copyBatch := func(p int32, from int64, abortAfter int) {
		t.Helper()
		msgs := take(t, consumer, in, p, from, min(batch, perPartition-int(from)))
		txnOp(t, "BeginTxn", producer.BeginTxn)
		for i, m := range msgs {
			if abortAfter > 0 && i == abortAfter {
				txnOp(t, "AbortTxn", producer.AbortTxn)
				return
			}
			send(t, producer, messages(out, p, "copy-"+string(m.Value)))
			if err := producer.AddMessageToTxn(m, group, nil); err != nil {
				t.Fatalf("AddMessageToTxn %s/%d@%d: %v", in, p, m.Offset, err)
			}
		}
		txnOp(t, "CommitTxn", producer.CommitTxn)
	}

	var transactions, aborts int
	for p := range int32(partitions) {
		for {
			from := committedOffset(t, client, group, in, p)
			if from == perPartition {
				break
			}
			if from > perPartition || from%batch != 0 {
				t.Fatalf("partition %d: committed offset %d, want a multiple of %d up to %d", p, from, batch, perPartition)
			}
			if transactions++; transactions > 2*partitions*perPartition {
				t.Fatalf("partition %d: still at committed offset %d after %d transactions", p, from, transactions)
			}
			if p == 1 && from == batch && aborts == 0 {
				aborts++
				copyBatch(p, from, 3)
				continue // the retry starts from the same committed offset
			}
			copyBatch(p, from, 0)
		}
	}
	// Per partition ceil(23/5) = 5 committed transactions, plus the aborted one.
	if wantTxns := partitions*((perPartition+batch-1)/batch) + 1; transactions != wantTxns || aborts != 1 {
		t.Errorf("%d transactions, %d aborted; want %d, 1 aborted", transactions, aborts, wantTxns)
	}

	for p := range int32(partitions) {
		sendPlain(t, addr, out, p, "end")
		var wantOut []string
		for _, v := range want[p] {
			wantOut = append(wantOut, "copy-"+v)
		}
		if got := values(readUntil(t, addr, out, p, sarama.ReadCommitted, "end")); !slices.Equal(got, append(wantOut, "end")) {
			t.Errorf("%s/%d at read_committed: %v,\nwant %v", out, p, got, append(wantOut, "end"))
		}
		// The aborted transaction's records are in the log all the same.
		uncommitted := values(readUntil(t, addr, out, p, sarama.ReadUncommitted, "end"))
		if extra := len(uncommitted) - len(wantOut) - 1; p == 1 && extra != 3 || p == 0 && extra != 0 {
			t.Errorf("%s/%d at read_uncommitted: %v: %d records beyond the committed ones, want %d", out, p, uncommitted, extra, 3*p)
		}
	}

	admin := newAdmin(t, addr)
	committed, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{in: {0, 1}})
	if err != nil {
		t.Fatalf("list offsets of %s: %v", group, err)
	}
	for p := range int32(partitions) {
		end, err := client.GetOffset(in, p, sarama.OffsetNewest)
		if err != nil || end != perPartition {
			t.Fatalf("end offset of %s/%d: %d (%v), want %d", in, p, end, err, perPartition)
		}
		if b := committed.GetBlock(in, p); b == nil || b.Err != sarama.ErrNoError || b.Offset != end {
			t.Errorf("%s/%d: group %s committed %+v, want offset %d", in, p, group, b, end)
		}
	}
}

// committedOffset is where a copier restarting now resumes partition p of
// topic: the group's committed offset as sarama's OffsetManager fetches it
// at read_committed (RequireStable: never below a transaction's offsets
// that are committed but not yet materialized), or 0 if there is none.
func committedOffset(t *testing.T, client sarama.Client, group, topic string, p int32) int64 {
	t.Helper()
	var next int64
	err := bounded(t, "fetch committed offset", func() error {
		om, err := sarama.NewOffsetManagerFromClient(group, client)
		if err != nil {
			return err
		}
		defer om.Close()
		pom, err := om.ManagePartition(topic, p)
		if err != nil {
			return err
		}
		defer pom.AsyncClose()
		next, _ = pom.NextOffset()
		return nil
	})
	if err != nil {
		t.Fatalf("committed offset of %s for %s/%d: %v", group, topic, p, err)
	}
	if next == sarama.OffsetOldest {
		return 0
	}
	return next
}

// take consumes n records of partition p of topic from offset from.
func take(t *testing.T, consumer sarama.Consumer, topic string, p int32, from int64, n int) []*sarama.ConsumerMessage {
	t.Helper()
	pc, err := consumer.ConsumePartition(topic, p, from)
	if err != nil {
		t.Fatalf("consume %s/%d from %d: %v", topic, p, from, err)
	}
	defer pc.Close()
	var got []*sarama.ConsumerMessage
	deadline := time.After(waitFor)
	for len(got) < n {
		select {
		case m := <-pc.Messages():
			got = append(got, m)
		case err := <-pc.Errors():
			t.Fatalf("consume %s/%d: %v", topic, p, err)
		case <-deadline:
			t.Fatalf("%s/%d: %d of %d records from %d within %v", topic, p, len(got), n, from, waitFor)
		}
	}
	if got[0].Offset != from {
		t.Fatalf("%s/%d: consuming from %d started at %d", topic, p, from, got[0].Offset)
	}
	return got
}

// Offsets sent by TxnOffsetCommit are pending until EndTxn: OffsetFetch
// answers the last committed offset meanwhile, or UNSTABLE_OFFSET_COMMIT for
// the partition when RequireStable is set (Kafka's
// OffsetMetadataManager.fetchOffsets); the commit makes them the group's,
// an abort discards them. sarama's AbortTxn never sends the offsets it was
// given, so this test drives the requests itself, with sarama's request
// types at the versions its transaction manager uses.
func TestTxnOffsetCommitPendingUntilEndTxn(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	const topic, group, txnID = "pending-offsets", "pending-group", "pending-offsets"
	createTopic(t, addr, topic, 1)
	cfg := newConfig("")
	cfg.Version = txnVersion
	client, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()
	b, err := client.TransactionCoordinator(txnID)
	if err != nil {
		t.Fatalf("transaction coordinator: %v", err)
	}
	if gb, err := client.Coordinator(group); err != nil || gb.ID() != b.ID() {
		t.Fatalf("group coordinator: %v %v, want broker %d", gb, err, b.ID())
	}

	id := txnID
	init, err := b.InitProducerID(&sarama.InitProducerIDRequest{Version: 4, TransactionalID: &id, TransactionTimeout: 20 * time.Second, ProducerID: -1, ProducerEpoch: -1})
	if err != nil || init.Err != sarama.ErrNoError {
		t.Fatalf("InitProducerId: %+v %v", init, err)
	}
	pid, epoch := init.ProducerID, init.ProducerEpoch

	// fetch returns the group's offset for the partition and its error.
	fetch := func(requireStable bool) (int64, sarama.KError) {
		t.Helper()
		req := sarama.NewOffsetFetchRequest(txnVersion, group, map[string][]int32{topic: {0}})
		req.RequireStable = requireStable
		resp, err := b.FetchOffset(req)
		if err != nil {
			t.Fatalf("OffsetFetch: %v", err)
		}
		blk := resp.GetBlock(topic, 0)
		if blk == nil {
			t.Fatalf("OffsetFetch: no block for %s/0: %+v", topic, resp)
		}
		return blk.Offset, blk.Err
	}
	// stable polls OffsetFetch with RequireStable until the offset is no
	// longer pending (Kafka writes the markers after answering EndTxn).
	stable := func() int64 {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for {
			off, kerr := fetch(true)
			if kerr == sarama.ErrNoError {
				return off
			}
			if kerr != sarama.ErrUnstableOffsetCommit || time.Now().After(deadline) {
				t.Fatalf("OffsetFetch RequireStable after EndTxn: offset %d, %v", off, kerr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// retried sends a coordinator request until it stops answering
	// CONCURRENT_TRANSACTIONS (the previous transaction completing).
	retried := func(what string, f func() (sarama.KError, error)) {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for {
			kerr, err := f()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if kerr == sarama.ErrNoError {
				return
			}
			if kerr != sarama.ErrConcurrentTransactions || time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, kerr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// txn runs one transaction committing offset for the group, checks
	// what OffsetFetch shows before EndTxn, and ends it.
	txn := func(offset, before int64, commit bool) {
		t.Helper()
		retried("AddOffsetsToTxn", func() (sarama.KError, error) {
			r, err := b.AddOffsetsToTxn(&sarama.AddOffsetsToTxnRequest{Version: 3, TransactionalID: txnID, ProducerID: pid, ProducerEpoch: epoch, GroupID: group})
			if err != nil {
				return 0, err
			}
			return r.Err, nil
		})
		r, err := b.TxnOffsetCommit(&sarama.TxnOffsetCommitRequest{
			Version: 3, TransactionalID: txnID, GroupID: group, ProducerID: pid, ProducerEpoch: epoch,
			GenerationID: sarama.GroupGenerationUndefined,
			Topics:       map[string][]*sarama.PartitionOffsetMetadata{topic: {{Partition: 0, Offset: offset, LeaderEpoch: -1}}},
		})
		if err != nil || len(r.Topics[topic]) != 1 || r.Topics[topic][0].Err != sarama.ErrNoError {
			t.Fatalf("TxnOffsetCommit %d: %+v %v", offset, r, err)
		}
		if off, kerr := fetch(false); off != before || kerr != sarama.ErrNoError {
			t.Errorf("OffsetFetch with offset %d pending: %d, %v; want %d, no error", offset, off, kerr, before)
		}
		if _, kerr := fetch(true); kerr != sarama.ErrUnstableOffsetCommit {
			t.Errorf("OffsetFetch RequireStable with offset %d pending: %v, want UNSTABLE_OFFSET_COMMIT", offset, kerr)
		}
		retried("EndTxn", func() (sarama.KError, error) {
			r, err := b.EndTxn(&sarama.EndTxnRequest{Version: 3, TransactionalID: txnID, ProducerID: pid, ProducerEpoch: epoch, TransactionResult: commit})
			if err != nil {
				return 0, err
			}
			return r.Err, nil
		})
	}

	txn(5, -1, true)
	if off := stable(); off != 5 {
		t.Errorf("after the commit: offset %d, want 5", off)
	}
	txn(9, 5, false)
	if off := stable(); off != 5 {
		t.Errorf("after the abort: offset %d, want 5 (the aborted 9 discarded)", off)
	}
	txn(12, 5, true)
	if off := stable(); off != 12 {
		t.Errorf("after the second commit: offset %d, want 12", off)
	}
}

// The same copy as a sarama consumer group member would run it: one
// transaction per record, its offset committed with the session's member id
// and generation (TxnOffsetCommit v3, KIP-447), so the coordinator can fence
// a stale member. A commit naming the wrong generation gets
// ILLEGAL_GENERATION, one naming a member the group does not have gets
// UNKNOWN_MEMBER_ID (Kafka's ClassicGroup.validateOffsetCommit); sarama
// calls both abortable, and the producer carries on after AbortTxn.
func TestExactlyOnceConsumerGroupWithSarama(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	const in, out, group, txnID = "eosg-in", "eosg-out", "eosg-copier", "eosg-copier"
	const partitions, perPartition = 2, 20
	createTopic(t, addr, in, partitions)
	createTopic(t, addr, out, partitions)
	want := make([][]string, partitions)
	for p := range int32(partitions) {
		want[p] = numbered(fmt.Sprintf("p%d", p), 0, perPartition)
		sendPlain(t, addr, in, p, want[p]...)
	}

	c := &txnCopier{
		producer: newSyncProducer(t, addr, producerConfig(txnID)),
		group:    group,
		out:      out,
		sessions: make(chan sarama.ConsumerGroupSession, 8),
		copied:   make(chan string, partitions*perPartition),
		errs:     make(chan error, 8),
	}
	cfg := newConfig("")
	cfg.Version = txnVersion
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.Offsets.AutoCommit.Enable = false // offsets go only through transactions
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	if err != nil {
		t.Fatalf("consumer group: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{in}, c); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	go func() {
		for err := range cg.Errors() {
			select {
			case c.errs <- err:
			default:
			}
		}
	}()
	stop := func() {
		cancel()
		if err := bounded(t, "consumer group Close", cg.Close); err != nil {
			t.Errorf("close consumer group: %v", err)
		}
		select {
		case err := <-consumed:
			if err != nil {
				t.Errorf("Consume: %v", err)
			}
		case <-time.After(waitFor):
			t.Errorf("Consume did not return within %v of Close", waitFor)
		}
	}
	defer func() {
		if ctx.Err() == nil {
			stop()
		}
	}()

	seen := make(map[string]int)
	deadline := time.After(waitFor)
	for len(seen) < partitions*perPartition {
		select {
		case v := <-c.copied:
			if seen[v]++; seen[v] > 1 {
				t.Fatalf("%s copied twice", v)
			}
		case err := <-c.errs:
			t.Fatalf("copier: %v", err)
		case <-deadline:
			t.Fatalf("%d of %d records copied within %v", len(seen), partitions*perPartition, waitFor)
		}
	}

	// The member is still in the group, at its session's generation.
	var sess sarama.ConsumerGroupSession
	for len(c.sessions) > 0 {
		sess = <-c.sessions
	}
	for _, bad := range []struct {
		name string
		meta *sarama.ConsumerGroupMetadata
		want sarama.KError
	}{
		{"a later generation", &sarama.ConsumerGroupMetadata{GroupID: group, GenerationID: sess.GenerationID() + 1, MemberID: sess.MemberID()}, sarama.ErrIllegalGeneration},
		{"an unknown member", &sarama.ConsumerGroupMetadata{GroupID: group, GenerationID: sess.GenerationID(), MemberID: "nobody"}, sarama.ErrUnknownMemberId},
	} {
		c.mu.Lock()
		txnOp(t, "BeginTxn", c.producer.BeginTxn)
		// Offset 0 would rewind the group, were it committed.
		rewind := map[string][]*sarama.PartitionOffsetMetadata{in: {{Partition: 0, Offset: 0}}}
		if err := c.producer.AddOffsetsToTxnWithGroupMetadata(rewind, bad.meta); err != nil {
			t.Fatalf("AddOffsetsToTxnWithGroupMetadata: %v", err)
		}
		if err := bounded(t, "CommitTxn", c.producer.CommitTxn); !errors.Is(err, bad.want) {
			t.Errorf("commit naming %s: %v, want %v", bad.name, err, bad.want)
		}
		txnOp(t, "AbortTxn", c.producer.AbortTxn)
		c.mu.Unlock()
	}
	stop()

	committed, err := newAdmin(t, addr).ListConsumerGroupOffsets(group, map[string][]int32{in: {0, 1}})
	if err != nil {
		t.Fatalf("list offsets of %s: %v", group, err)
	}
	for p := range int32(partitions) {
		if b := committed.GetBlock(in, p); b == nil || b.Err != sarama.ErrNoError || b.Offset != perPartition {
			t.Errorf("%s/%d: group %s committed %+v, want offset %d", in, p, group, b, perPartition)
		}
		sendPlain(t, addr, out, p, "end")
		var wantOut []string
		for _, v := range want[p] {
			wantOut = append(wantOut, "copy-"+v)
		}
		wantOut = append(wantOut, "end")
		if got := values(readUntil(t, addr, out, p, sarama.ReadCommitted, "end")); !slices.Equal(got, wantOut) {
			t.Errorf("%s/%d at read_committed: %v,\nwant %v", out, p, got, wantOut)
		}
	}
}

// txnCopier is a consumer group handler that copies each record to the same
// partition of out, in a transaction of its own that commits the record's
// offset with the session's group metadata.
type txnCopier struct {
	producer sarama.SyncProducer
	group    string
	out      string
	mu       sync.Mutex // one transaction at a time on the shared producer
	sessions chan sarama.ConsumerGroupSession
	copied   chan string // the value of each record whose copy committed
	errs     chan error
}

func (c *txnCopier) Setup(s sarama.ConsumerGroupSession) error {
	select {
	case c.sessions <- s:
	default:
	}
	return nil
}

func (c *txnCopier) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (c *txnCopier) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if err := c.copy(s, m); err != nil {
				select {
				case c.errs <- err:
				default:
				}
				return err
			}
			select {
			case c.copied <- string(m.Value):
			case <-s.Context().Done():
				return nil
			}
		case <-s.Context().Done():
			return nil
		}
	}
}

func (c *txnCopier) copy(s sarama.ConsumerGroupSession, m *sarama.ConsumerMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.producer.BeginTxn(); err != nil {
		return fmt.Errorf("BeginTxn: %w", err)
	}
	if _, _, err := c.producer.SendMessage(&sarama.ProducerMessage{Topic: c.out, Partition: m.Partition, Value: sarama.StringEncoder("copy-" + string(m.Value))}); err != nil {
		return fmt.Errorf("send copy of %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	if err := c.producer.AddMessageToTxnWithGroupMetadata(m, sarama.NewConsumerGroupMetadataFromSession(s, c.group, nil), nil); err != nil {
		return fmt.Errorf("AddMessageToTxn: %w", err)
	}
	if err := c.producer.CommitTxn(); err != nil {
		return fmt.Errorf("CommitTxn after %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	return nil
}
