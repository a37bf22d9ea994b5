package compat

import (
	"errors"
	"slices"
	"testing"

	"github.com/IBM/sarama"
)

// An idempotent sarama producer (InitProducerId without a transactional id,
// then Produce with producer id, epoch 0 and sequences from 0) writes each
// record exactly once and in order, and the partition's producer state
// (DescribeProducers) holds its last sequence.
func TestIdempotentProducerExactlyOnceInOrder(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	const topic = "idempotent"
	const n = 300
	createTopic(t, addr, topic, 1)

	p := newSyncProducer(t, addr, producerConfig(""))
	want := numbered("idem", 0, n)
	// Batches of several sizes, and single records, so sequences advance
	// both within a batch and from batch to batch.
	for i := 0; i < n; {
		size := min(1+i%37, n-i)
		if size == 1 {
			part, off, err := p.SendMessage(messages(topic, 0, want[i])[0])
			if err != nil || part != 0 || off != int64(i) {
				t.Fatalf("send %s: partition %d offset %d err %v, want 0, %d, nil", want[i], part, off, err, i)
			}
		} else {
			send(t, p, messages(topic, 0, want[i:i+size]...))
		}
		i += size
	}

	got := readUntil(t, addr, topic, 0, sarama.ReadUncommitted, want[n-1])
	if !slices.Equal(values(got), want) {
		t.Errorf("consumed %v,\nwant %v", values(got), want)
	}
	for i, m := range got {
		if m.Offset != int64(i) {
			t.Fatalf("record %d (%s) at offset %d: offsets must be 0..%d without gaps", i, m.Value, m.Offset, n-1)
		}
	}

	producers, err := newAdmin(t, addr).DescribeProducers(map[string][]int32{topic: {0}})
	if err != nil {
		t.Fatalf("describe producers: %v", err)
	}
	part := producers[topic][0]
	if part.ErrorCode != sarama.ErrNoError || len(part.ActiveProducers) != 1 {
		t.Fatalf("describe producers: %+v, want one active producer", part)
	}
	if ps := part.ActiveProducers[0]; ps.ProducerID < 0 || ps.ProducerEpoch != 0 || ps.LastSequence != n-1 || ps.CurrentTxnStartOffset != -1 {
		t.Errorf("producer state %+v: want a producer id, epoch 0, last sequence %d, no open transaction", ps, n-1)
	}
}

// When a batch fails for good, sarama's idempotent producer cannot reuse its
// sequence numbers, so it bumps its epoch by itself (no InitProducerId;
// asyncProducer.bumpIdempotentProducerEpoch) and starts again at sequence 0.
// Kafka takes that for a producer that is not transactional: a higher epoch
// is accepted when its first sequence is 0 (ProducerAppendInfo.checkSequence).
func TestIdempotentProducerEpochBumpAfterFailedBatch(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	const topic = "idempotent-bump"
	maxBytes := "1000"
	admin := newAdmin(t, addr)
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: map[string]*string{"max.message.bytes": &maxBytes}}, false); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	p := newSyncProducer(t, addr, producerConfig(""))
	send(t, p, messages(topic, 0, numbered("before", 0, 3)...))
	big := &sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.ByteEncoder(make([]byte, 2000))}
	if err := bounded(t, "SendMessage", func() error { _, _, err := p.SendMessage(big); return err }); !errors.Is(err, sarama.ErrMessageSizeTooLarge) {
		t.Fatalf("a batch above max.message.bytes: %v, want MESSAGE_TOO_LARGE", err)
	}
	send(t, p, messages(topic, 0, numbered("after", 0, 3)...))

	want := slices.Concat(numbered("before", 0, 3), numbered("after", 0, 3))
	if got := values(readUntil(t, addr, topic, 0, sarama.ReadUncommitted, "after-2")); !slices.Equal(got, want) {
		t.Errorf("consumed %v, want %v", got, want)
	}
	producers, err := admin.DescribeProducers(map[string][]int32{topic: {0}})
	if err != nil {
		t.Fatalf("describe producers: %v", err)
	}
	if part := producers[topic][0]; len(part.ActiveProducers) != 1 || part.ActiveProducers[0].ProducerEpoch != 1 || part.ActiveProducers[0].LastSequence != 2 {
		t.Errorf("producer state %+v: want one producer at epoch 1, last sequence 2", part)
	}
}
