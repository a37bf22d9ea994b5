package compat

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// txnVersion is the protocol level the producer tests ask sarama for: with
// it sarama sends InitProducerId v4, AddPartitionsToTxn, AddOffsetsToTxn
// and EndTxn v3, TxnOffsetCommit v3 (KIP-447 member fields), Produce v10 and
// Fetch v12, all within what kbroker advertises.
var txnVersion = sarama.V4_0_0_0

// producerConfig is the configuration of an idempotent producer, and of a
// transactional one when txnID is not empty. sarama refuses Idempotent
// without acks=all, one request in flight and a version of 0.11 or later.
// Records go to the partition each message names.
func producerConfig(txnID string) *sarama.Config {
	cfg := newConfig("")
	cfg.Version = txnVersion
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Retry.Backoff = 50 * time.Millisecond
	cfg.Producer.Transaction.ID = txnID
	cfg.Producer.Transaction.Timeout = 20 * time.Second
	cfg.Producer.Transaction.Retry.Backoff = 20 * time.Millisecond
	return cfg
}

// bounded runs f and returns its error, failing the test if f has not
// returned within waitFor: sarama's blocking calls take no context, and a
// test must fail rather than hang on one.
func bounded(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(waitFor):
		t.Fatalf("%s did not return within %v", what, waitFor)
		return nil
	}
}

// newSyncProducer starts a sync producer with cfg, within waitFor (an
// idempotent producer sends InitProducerId before it returns), closed at
// cleanup.
func newSyncProducer(t *testing.T, addr string, cfg *sarama.Config) sarama.SyncProducer {
	t.Helper()
	var p sarama.SyncProducer
	err := bounded(t, "NewSyncProducer", func() (err error) {
		p, err = sarama.NewSyncProducer([]string{addr}, cfg)
		return err
	})
	if err != nil {
		t.Fatalf("producer (transactional id %q): %v", cfg.Producer.Transaction.ID, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// messages builds one message per value, all to partition p of topic.
func messages(topic string, p int32, values ...string) []*sarama.ProducerMessage {
	msgs := make([]*sarama.ProducerMessage, len(values))
	for i, v := range values {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder(v)}
	}
	return msgs
}

// numbered returns prefix-from ... prefix-(to-1).
func numbered(prefix string, from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// send sends msgs with p, failing the test on any error.
func send(t *testing.T, p sarama.SyncProducer, msgs []*sarama.ProducerMessage) {
	t.Helper()
	if err := bounded(t, "SendMessages", func() error { return p.SendMessages(msgs) }); err != nil {
		t.Fatalf("send %d records: %v", len(msgs), err)
	}
}

// sendPlain writes values to partition p of topic with a plain producer (no
// producer id: outside any transaction).
func sendPlain(t *testing.T, addr, topic string, p int32, values ...string) {
	t.Helper()
	cfg := newConfig("")
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	send(t, newSyncProducer(t, addr, cfg), messages(topic, p, values...))
}

// txnOp runs a transaction step (BeginTxn, CommitTxn, AbortTxn), failing the
// test on an error.
func txnOp(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := bounded(t, what, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// readUntil consumes partition p of topic from the oldest offset at the given
// isolation level until a record with value last arrives, and returns all
// records consumed, last included. It fails the test on a consumer error or
// if last has not arrived within waitFor.
func readUntil(t *testing.T, addr, topic string, p int32, isolation sarama.IsolationLevel, last string) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := newConfig("")
	cfg.Version = txnVersion
	cfg.Consumer.IsolationLevel = isolation
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	consumer, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("consume %s/%d: %v", topic, p, err)
	}
	defer pc.Close()
	return collectUntil(t, pc, last)
}

// collectUntil returns the records pc delivers up to and including the first
// with value last, failing the test on a consumer error or if last has not
// arrived within waitFor.
func collectUntil(t *testing.T, pc sarama.PartitionConsumer, last string) []*sarama.ConsumerMessage {
	t.Helper()
	var got []*sarama.ConsumerMessage
	deadline := time.After(waitFor)
	for {
		select {
		case m := <-pc.Messages():
			got = append(got, m)
			if string(m.Value) == last {
				return got
			}
		case err := <-pc.Errors():
			t.Fatalf("consume: %v", err)
		case <-deadline:
			t.Fatalf("%q not consumed within %v; got %v", last, waitFor, values(got))
		}
	}
}

func values(msgs []*sarama.ConsumerMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Value)
	}
	return out
}

func offsets(msgs []*sarama.ConsumerMessage) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Offset
	}
	return out
}

// newAdmin returns a cluster admin at txnVersion, closed at cleanup.
func newAdmin(t *testing.T, addr string) sarama.TransactionClusterAdmin {
	t.Helper()
	cfg := newConfig("")
	cfg.Version = txnVersion
	admin, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin.(sarama.TransactionClusterAdmin)
}
