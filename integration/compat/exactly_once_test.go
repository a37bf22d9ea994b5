package compat

import (
	"fmt"
	"slices"
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

