package main

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// roundTrip frames req as a client would and decodes the null broker's
// answer.
func roundTrip(t *testing.T, b *nullBroker, req kmsg.Request) kmsg.Response {
	t.Helper()
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, req, 7)
	out, err := b.handle(frame[4:])
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint32(out[4:]); got != 7 {
		t.Fatalf("correlation id %d", got)
	}
	resp := req.ResponseKind()
	body := out[8:]
	if resp.IsFlexible() && req.Key() != kmsg.ApiVersions.Int16() {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestNullBrokerProduceFetch(t *testing.T) {
	b := &nullBroker{host: "127.0.0.1", port: 1, topics: map[string]*nullTopic{}, byID: map[[16]byte]string{}, grew: make(chan struct{})}
	b.topic("t", 2)

	batch := func(records int32) []byte {
		bt := make([]byte, 61+records)
		binary.BigEndian.PutUint32(bt[8:], uint32(len(bt)-12))
		binary.BigEndian.PutUint32(bt[23:], uint32(records-1))
		return bt
	}
	for i, n := range []int32{3, 2, 5} {
		p := kmsg.NewPtrProduceRequest()
		p.SetVersion(9)
		p.Acks = -1
		pt := kmsg.NewProduceRequestTopic()
		pt.Topic = "t"
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Partition, pp.Records = 1, batch(n)
		pt.Partitions = append(pt.Partitions, pp)
		p.Topics = append(p.Topics, pt)
		resp := roundTrip(t, b, p).(*kmsg.ProduceResponse)
		want := []int64{0, 3, 5}[i]
		if got := resp.Topics[0].Partitions[0].BaseOffset; got != want {
			t.Fatalf("batch %d: base offset %d, want %d", i, got, want)
		}
	}

	fetch := func(offset int64, maxBytes int32) *kmsg.FetchResponseTopicPartition {
		f := kmsg.NewPtrFetchRequest()
		f.SetVersion(12)
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "t"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 1, offset, maxBytes
		ft.Partitions = append(ft.Partitions, fp)
		f.Topics = append(f.Topics, ft)
		return &roundTrip(t, b, f).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	}
	if p := fetch(4, 1<<20); p.HighWatermark != 10 || len(p.RecordBatches) != 63+66 { // the batches at 3 and 5
		t.Fatalf("fetch from 4: HW %d, %d bytes", p.HighWatermark, len(p.RecordBatches))
	}
	if p := fetch(0, 1); len(p.RecordBatches) != 64 || binary.BigEndian.Uint64(p.RecordBatches) != 0 {
		t.Fatalf("fetch from 0 with 1 byte: %d bytes", len(p.RecordBatches))
	}
	if p := fetch(10, 1<<20); len(p.RecordBatches) != 0 {
		t.Fatalf("fetch at the end: %d bytes", len(p.RecordBatches))
	}
}

func TestNullBrokerDeleteTopics(t *testing.T) {
	b := &nullBroker{host: "127.0.0.1", port: 1, topics: map[string]*nullTopic{}, byID: map[[16]byte]string{}, grew: make(chan struct{})}
	byName, byID := b.topic("a", 1), b.topic("b", 1)

	d := kmsg.NewPtrDeleteTopicsRequest()
	d.SetVersion(6)
	for _, rt := range []kmsg.DeleteTopicsRequestTopic{
		{Topic: kmsg.StringPtr("a")},
		{TopicID: byID.id},
		{Topic: kmsg.StringPtr("missing")},
	} {
		d.Topics = append(d.Topics, rt)
	}
	resp := roundTrip(t, b, d).(*kmsg.DeleteTopicsResponse)
	if len(resp.Topics) != 3 {
		t.Fatalf("%d topics in the response, want 3", len(resp.Topics))
	}
	for i, want := range []struct {
		name string
		id   [16]byte
		code int16
	}{{"a", byName.id, 0}, {"b", byID.id, 0}, {"missing", [16]byte{}, kerr.UnknownTopicOrPartition.Code}} {
		got := resp.Topics[i]
		if got.Topic == nil || *got.Topic != want.name || got.TopicID != want.id || got.ErrorCode != want.code {
			t.Errorf("topic %d: %v %x error %d, want %s %x error %d", i, got.Topic, got.TopicID, got.ErrorCode, want.name, want.id, want.code)
		}
	}
	if len(b.topics) != 0 || len(b.byID) != 0 {
		t.Errorf("left after deleting both: %d topics, %d ids", len(b.topics), len(b.byID))
	}

	// Before v6 topics are named in TopicNames.
	b.topic("c", 1)
	old := kmsg.NewPtrDeleteTopicsRequest()
	old.SetVersion(1)
	old.TopicNames = []string{"c"}
	if r := roundTrip(t, b, old).(*kmsg.DeleteTopicsResponse); len(r.Topics) != 1 || r.Topics[0].ErrorCode != 0 || len(b.topics) != 0 {
		t.Errorf("v1 delete: %+v, %d topics left", r.Topics, len(b.topics))
	}
}
