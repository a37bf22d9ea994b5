package integration

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Unframeable streams close the connection; the broker keeps serving others.
func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{"socket.request.max.bytes": "1048576"})
	createTopic(t, b.admin(t), "safe", 1, nil)
	produceSync(t, b.client(t), &kgo.Record{Topic: "safe", Value: []byte("kept")})

	frames := map[string][]byte{
		"oversized":     be32(200 << 20),
		"negative size": be32(0xFFFFFFF0),
		"too short":     append(be32(3), 0, 1, 2),
		"unknown key":   append(be32(10), 0x27, 0x0F, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF),
		"garbage body":  append(be32(14), 0, 3, 0, 9, 0, 0, 0, 1, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF),
		"truncated hdr": append(be32(8), 0, 3, 0, 1, 0, 0, 0, 1),
	}
	for name, frame := range frames {
		c, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(frame)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(make([]byte, 64))
		if err != io.EOF {
			t.Errorf("%s: read %d bytes, %v; want the connection closed", name, n, err)
		}
		c.Close()
	}

	got := consumeN(t, b.Addr(), "safe", 1)
	if string(got[0].Value) != "kept" {
		t.Fatalf("stored record changed: %q", got[0].Value)
	}
}

// An ApiVersions version the broker does not know gets a v0 answer with
// UNSUPPORTED_VERSION and the supported table, as Kafka does.
func TestApiVersionsUnsupportedVersion(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// ApiVersions v99, correlation id 7, client id "x", then v3-style tags.
	body := []byte{0, 18, 0, 99, 0, 0, 0, 7, 0, 1, 'x', 0}
	c.Write(append(be32(uint32(len(body))), body...))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	size := make([]byte, 4)
	if _, err := io.ReadFull(c, size); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, binary.BigEndian.Uint32(size))
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatal(err)
	}
	if corr := int32(binary.BigEndian.Uint32(resp)); corr != 7 {
		t.Fatalf("correlation id %d", corr)
	}
	v := kmsg.NewPtrApiVersionsResponse()
	v.Version = 0
	if err := v.ReadFrom(resp[4:]); err != nil {
		t.Fatal(err)
	}
	if v.ErrorCode != kerr.UnsupportedVersion.Code || len(v.ApiKeys) == 0 {
		t.Fatalf("got error %d with %d keys", v.ErrorCode, len(v.ApiKeys))
	}
}

// Corrupt and invalid batches get the Kafka error clients expect, per
// partition; nothing is appended and the log stays as it was.
func TestProduceRejectsBadBatches(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{"auto.create.topics.enable": "false"})
	adm := b.admin(t)
	max := "2000"
	createTopic(t, adm, "strict", 1, map[string]*string{"max.message.bytes": &max})
	cl := b.client(t)
	produceSync(t, cl, &kgo.Record{Topic: "strict", Value: []byte("first")})

	good := func() []byte { return encodeBatch([][]byte{[]byte("a"), []byte("b")}) }
	cases := []struct {
		name  string
		topic string
		batch func() []byte
		want  *kerr.Error
	}{
		{"bad crc", "strict", func() []byte { bt := good(); bt[len(bt)-1] ^= 0xFF; return bt }, kerr.CorruptMessage},
		{"truncated", "strict", func() []byte { bt := good(); return bt[:len(bt)-3] }, kerr.CorruptMessage},
		{"magic 1", "strict", func() []byte { bt := good(); bt[16] = 1; return bt }, kerr.InvalidRecord},
		{"base offset 5", "strict", func() []byte { bt := good(); binary.BigEndian.PutUint64(bt, 5); return bt }, kerr.InvalidRecord},
		{"count mismatch", "strict", func() []byte {
			bt := good()
			binary.BigEndian.PutUint32(bt[57:], 3)
			return recrc(bt)
		}, kerr.InvalidRecord},
		{"two batches", "strict", func() []byte { return append(good(), good()...) }, kerr.InvalidRecord},
		{"too large", "strict", func() []byte { return encodeBatch([][]byte{make([]byte, 4000)}) }, kerr.MessageTooLarge},
		{"empty", "strict", func() []byte { return nil }, kerr.InvalidRecord},
		// Producer 7 wrote sequences 0-1 below: 5 leaves a gap.
		{"sequence gap", "strict", func() []byte { return producerBatch(good(), 7, 5, false) }, kerr.OutOfOrderSequenceNumber},
		{"transactional outside a transaction", "strict", func() []byte { return producerBatch(good(), 8, 0, true) }, kerr.InvalidTxnState},
		{"unknown topic", "missing", good, kerr.UnknownTopicOrPartition},
	}
	produce := func(topic string, records []byte) int16 {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = records
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatalf("produce: %v", err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := produce("strict", producerBatch(good(), 7, 0, false)); code != 0 {
		t.Fatalf("idempotent batch: %v", kerr.ErrorForCode(code))
	}
	for _, tc := range cases {
		if code := produce(tc.topic, tc.batch()); code != tc.want.Code {
			t.Errorf("%s: error %v, want %v", tc.name, kerr.ErrorForCode(code), tc.want)
		}
	}

	end, err := adm.ListEndOffsets(ctx(t), "strict")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := end.Lookup("strict", 0); o.Offset != 3 {
		t.Fatalf("end offset %d after refused batches, want 3", o.Offset)
	}
	if got := consumeN(t, b.Addr(), "strict", 1); string(got[0].Value) != "first" {
		t.Fatalf("stored record changed: %q", got[0].Value)
	}
}

// producerBatch stamps producer id pid at epoch 0 and sequence seq on bt.
func producerBatch(bt []byte, pid int64, seq int32, transactional bool) []byte {
	binary.BigEndian.PutUint64(bt[43:], uint64(pid))
	binary.BigEndian.PutUint16(bt[51:], 0)
	binary.BigEndian.PutUint32(bt[53:], uint32(seq))
	if transactional {
		bt[22] |= 0x10 // attributes, low byte
	}
	return recrc(bt)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// encodeBatch builds an uncompressed RecordBatch v2 as a producer would.
func encodeBatch(values [][]byte) []byte {
	now := time.Now().UnixMilli()
	batch := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		LastOffsetDelta: int32(len(values) - 1), NumRecords: int32(len(values)),
	}
	var records []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: v}
		body := r.AppendTo(nil)
		// AppendTo writes Length as given; recompute it from the body.
		r.Length = int32(len(body) - kbin.VarintLen(r.Length))
		records = r.AppendTo(records)
	}
	batch.Records = records
	out := batch.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	return recrc(out)
}

// recrc recomputes a batch's CRC-32C after a test edits it.
func recrc(b []byte) []byte {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}
