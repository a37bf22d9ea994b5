package integration

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Every codec's batches are stored as sent and come back intact, headers
// too, in order, at consecutive offsets, for every acks setting.
func TestProduceConsumeCodecsAndAcks(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	adm := b.admin(t)

	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	acks := map[string]kgo.Acks{"acks0": kgo.NoAck(), "acks1": kgo.LeaderAck(), "acksall": kgo.AllISRAcks()}
	for cname, codec := range codecs {
		for aname, ack := range acks {
			topic := "codec-" + cname + "-" + aname
			createTopic(t, adm, topic, 1, nil)
			cl := b.client(t, kgo.ProducerBatchCompression(codec), kgo.RequiredAcks(ack), kgo.DisableIdempotentWrite(),
				kgo.DefaultProduceTopic(topic))
			const n = 300
			var rs []*kgo.Record
			for i := range n {
				rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: bytes.Repeat(value(i), 20), Headers: recordHeaders(i)})
			}
			produceSync(t, cl, rs...)
			got := consumeN(t, b.Addr(), topic, n)
			for i, r := range got {
				if r.Offset != int64(i) || !bytes.Equal(r.Value, bytes.Repeat(value(i), 20)) || string(r.Key) != fmt.Sprint(i) {
					t.Fatalf("%s: record %d: offset %d key %q", topic, i, r.Offset, r.Key)
				}
				if !slices.EqualFunc(r.Headers, recordHeaders(i), func(a, b kgo.RecordHeader) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
					t.Fatalf("%s: record %d: headers %q, want %q", topic, i, r.Headers, recordHeaders(i))
				}
			}
		}
	}
}

// recordHeaders gives record i none, one or two headers, one with an empty
// value.
func recordHeaders(i int) []kgo.RecordHeader {
	return []kgo.RecordHeader{{Key: "traceparent", Value: value(i)}, {Key: "empty", Value: []byte{}}}[:i%3]
}

// Records keep their offsets, topics their configs, across a clean restart.
func TestRestartKeepsEverything(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{"log.segment.bytes": "1048576"}) // Kafka 4's smallest: several segments
	adm := b.admin(t)
	ret := "3600000"
	createTopic(t, adm, "keep", 3, map[string]*string{"retention.ms": &ret})
	cl := b.client(t, kgo.DefaultProduceTopic("keep"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	const n = 2000
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Value: append(value(i), make([]byte, 4096)...)})
	}
	produceSync(t, cl, rs...)
	before, err := adm.ListEndOffsets(ctx(t), "keep")
	if err != nil {
		t.Fatal(err)
	}

	if segs, _ := filepath.Glob(filepath.Join(b.dir, "keep-0", "*.log")); len(segs) < 2 {
		t.Fatalf("%d segments in keep-0; the test wants several", len(segs))
	}
	clusterID := b.ClusterID()
	b = b.restart(t)
	if b.ClusterID() != clusterID || clusterID == "" {
		t.Errorf("cluster id %q before restart, %q after", clusterID, b.ClusterID())
	}
	adm = b.admin(t)
	after, err := adm.ListEndOffsets(ctx(t), "keep")
	if err != nil {
		t.Fatal(err)
	}
	before.Each(func(o kadm.ListedOffset) {
		if a, _ := after.Lookup(o.Topic, o.Partition); a.Offset != o.Offset {
			t.Errorf("partition %d: end offset %d before restart, %d after", o.Partition, o.Offset, a.Offset)
		}
	})
	cfgs, err := adm.DescribeTopicConfigs(ctx(t), "keep")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := cfgs.On("keep", nil); err != nil || !hasConfig(c.Configs, "retention.ms", ret) {
		t.Errorf("retention.ms lost across restart: %v %+v", err, c)
	}
	got := consumeN(t, b.Addr(), "keep", n)
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Value[:len(value(0))])] = true
	}
	if len(seen) != n {
		t.Fatalf("after restart read %d distinct records, want %d", len(seen), n)
	}
}

// partitionFetch is a sessionless Fetch of partition 0 of topic from its
// start, with maxBytes for the request and for the partition.
func partitionFetch(topic string, id [16]byte, maxWait, minBytes, maxBytes int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = maxWait, minBytes, maxBytes, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = maxBytes, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// A Fetch with MinBytes waits for data instead of answering empty at once,
// and answers as soon as an append arrives.
func TestFetchLongPoll(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	createTopic(t, b.admin(t), "poll", 1, nil)
	cl := b.client(t)
	id := topicID(t, b.admin(t), "poll")

	fetch := func(maxWait int32) (*kmsg.FetchResponse, time.Duration) {
		req := partitionFetch("poll", id, maxWait, 1, 1<<20)
		start := time.Now()
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp, time.Since(start)
	}

	// Nothing to read: the broker holds the request for MaxWait.
	resp, took := fetch(300)
	if n := len(resp.Topics[0].Partitions[0].RecordBatches); n != 0 || took < 250*time.Millisecond {
		t.Fatalf("empty fetch returned %d bytes after %v; want 0 bytes after ~300ms", n, took)
	}

	// An append while the request waits completes it.
	done := make(chan *kmsg.FetchResponse, 1)
	go func() { r, _ := fetch(20000); done <- r }()
	time.Sleep(100 * time.Millisecond)
	produceSync(t, b.client(t), &kgo.Record{Topic: "poll", Value: []byte("wake")})
	select {
	case r := <-done:
		if len(r.Topics[0].Partitions[0].RecordBatches) == 0 {
			t.Fatal("long poll woke without records")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long poll did not wake on append")
	}
}

// ListOffsets finds records by timestamp, and -1/-2/-3 as Kafka defines them.
func TestListOffsetsByTime(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	adm := b.admin(t)
	createTopic(t, adm, "times", 1, nil)
	cl := b.client(t, kgo.DefaultProduceTopic("times"))
	base := time.UnixMilli(1_700_000_000_000)
	for i := range 10 {
		produceSync(t, cl, &kgo.Record{Value: value(i), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	mustList := func(l kadm.ListedOffsets, err error) kadm.ListedOffsets {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	listed, err := adm.ListOffsetsAfterMilli(ctx(t), base.Add(4500*time.Millisecond).UnixMilli(), "times")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := listed.Lookup("times", 0); o.Offset != 5 || o.Err != nil {
		t.Fatalf("offset after t+4.5s = %d (%v), want 5", o.Offset, o.Err)
	}
	if o, _ := mustList(adm.ListStartOffsets(ctx(t), "times")).Lookup("times", 0); o.Offset != 0 {
		t.Fatalf("start offset %d", o.Offset)
	}
	if o, _ := mustList(adm.ListEndOffsets(ctx(t), "times")).Lookup("times", 0); o.Offset != 10 {
		t.Fatalf("end offset %d", o.Offset)
	}
	if o, _ := mustList(adm.ListMaxTimestampOffsets(ctx(t), "times")).Lookup("times", 0); o.Offset != 9 || o.Timestamp != base.Add(9*time.Second).UnixMilli() {
		t.Fatalf("max timestamp offset %d at %d", o.Offset, o.Timestamp)
	}
	if o, _ := mustList(adm.ListOffsetsAfterMilli(ctx(t), base.Add(time.Hour).UnixMilli(), "times")).Lookup("times", 0); o.Offset != 10 {
		// kadm maps Kafka's "none" (-1) to the end offset.
		t.Fatalf("offset after the last record = %d, want the end offset 10", o.Offset)
	}
}

// Consuming from the middle, from the end, and out of range behave as in
// Kafka.
func TestConsumeFromOffsets(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	createTopic(t, b.admin(t), "offsets", 1, nil)
	cl := b.client(t, kgo.DefaultProduceTopic("offsets"))
	for i := range 50 {
		produceSync(t, cl, &kgo.Record{Value: value(i)})
	}
	c := newClient(t, b.Addr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"offsets": {0: kgo.NewOffset().At(37)}}))
	fs := c.PollFetches(ctx(t))
	if rs := fs.Records(); len(rs) == 0 || rs[0].Offset != 37 || string(rs[0].Value) != string(value(37)) {
		t.Fatalf("consume from 37: %+v %v", rs, fs.Errors())
	}

	// A raw fetch past the end is OFFSET_OUT_OF_RANGE.
	req := kmsg.NewPtrFetchRequest()
	req.MaxBytes, req.SessionEpoch = 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = "offsets", topicID(t, b.admin(t), "offsets")
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 51, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch past end: error %d, want OFFSET_OUT_OF_RANGE", code)
	}
}

// fetch.max.bytes caps what one Fetch response carries, whatever the
// request's MaxBytes, and MinBytes with it: a long poll asking for more than
// the cap answers once the cap's worth is there (KafkaApis.handleFetchRequest).
func TestFetchMaxBytesCapsResponse(t *testing.T) {
	t.Parallel()
	const fetchMax = 4096
	b := startBroker(t, map[string]string{"fetch.max.bytes": strconv.Itoa(fetchMax)})
	adm := b.admin(t)
	createTopic(t, adm, "capped", 1, nil)
	cl := b.client(t, kgo.DefaultProduceTopic("capped"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 { // a batch of about 1 KiB each
		v := make([]byte, 1000)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		produceSync(t, cl, &kgo.Record{Value: v})
	}

	id := topicID(t, adm, "capped")
	fetch := func(minBytes int32) []byte {
		resp, err := partitionFetch("capped", id, 60000, minBytes, 1<<30).RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].RecordBatches
	}
	if records := fetch(1); len(records) == 0 || len(records) > fetchMax {
		t.Errorf("fetch returned %d bytes of records, want 1..%d", len(records), fetchMax)
	}
	// With MinBytes above the cap, an uncapped long poll would hold the
	// request for its whole minute, past the context's deadline; capped, it
	// answers with what fits, since waiting cannot add to a full response.
	if records := fetch(1 << 20); len(records) == 0 || len(records) > fetchMax {
		t.Errorf("long poll returned %d bytes of records, want 1..%d", len(records), fetchMax)
	}

	rc, err := adm.DescribeBrokerConfigs(ctx(t), nodeID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc[0].Configs {
		if c.Key == "fetch.max.bytes" {
			if c.MaybeValue() != strconv.Itoa(fetchMax) {
				t.Errorf("DescribeConfigs fetch.max.bytes = %q, want %d", c.MaybeValue(), fetchMax)
			}
			return
		}
	}
	t.Error("DescribeConfigs does not list fetch.max.bytes")
}

// acks=all is refused when min.insync.replicas exceeds the ISR (one
// replica here); acks=1 still works.
func TestMinInsyncReplicas(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	adm := b.admin(t)
	two := "2"
	createTopic(t, adm, "mir", 1, map[string]*string{"min.insync.replicas": &two})
	// kgo retries NOT_ENOUGH_REPLICAS until its timeout; look at the
	// broker's answer itself.
	produce := func(acks int16) int16 {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = acks, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "mir"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = encodeBatch([][]byte{[]byte("x")})
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		// kgo rewrites a raw produce's acks to the client's RequiredAcks.
		cl := b.client(t, kgo.RequiredAcks(map[int16]kgo.Acks{-1: kgo.AllISRAcks(), 1: kgo.LeaderAck()}[acks]), kgo.DisableIdempotentWrite())
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := produce(-1); code != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with min.insync.replicas=2: error %v, want NOT_ENOUGH_REPLICAS", kerr.ErrorForCode(code))
	}
	if code := produce(1); code != 0 {
		t.Fatalf("acks=1: error %v", kerr.ErrorForCode(code))
	}
	one := b.client(t, kgo.DefaultProduceTopic("mir"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	produceSync(t, one, &kgo.Record{Value: []byte("y")})
}

// Topics are auto-created on Metadata and Produce, unless disabled.
func TestAutoCreateTopics(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{"num.partitions": "4"})
	cl := b.client(t, kgo.AllowAutoTopicCreation())
	produceSync(t, cl, &kgo.Record{Topic: "auto", Value: []byte("hi")})
	td, err := b.admin(t).ListTopics(ctx(t), "auto")
	if err != nil || len(td["auto"].Partitions) != 4 {
		t.Fatalf("auto-created topic: %v %+v", err, td)
	}

	off := startBroker(t, map[string]string{"auto.create.topics.enable": "false"})
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("nope")
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = true
	resp, err := req.RequestWith(ctx(t), off.client(t))
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("metadata for unknown topic with auto-create disabled: error %d", code)
	}

	// One Metadata request auto-creates at most 10,000 partitions: two
	// topics of 5,001 are LEADER_NOT_AVAILABLE and not created, as Kafka's
	// controller refuses them. (One alone would be created; the test does
	// not make 5,001 files to show it.)
	wide := startBroker(t, map[string]string{"num.partitions": "5001"})
	req = kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = true
	for _, name := range []string{"w1", "w2"} {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	if resp, err = req.RequestWith(ctx(t), wide.client(t)); err != nil {
		t.Fatal(err)
	}
	for _, mt := range resp.Topics {
		if mt.ErrorCode != kerr.LeaderNotAvailable.Code {
			t.Errorf("%s among 10,002 partitions: error %d, want LEADER_NOT_AVAILABLE", *mt.Topic, mt.ErrorCode)
		}
	}
	if td, err := wide.admin(t).ListTopics(ctx(t)); err != nil || len(td) != 0 {
		t.Fatalf("after the refused auto-creation: %v, topics %v", err, td.Names())
	}
}

// CreateTime records too far from the broker's clock are refused with
// INVALID_TIMESTAMP (Kafka 4 allows an hour ahead by default); raising
// message.timestamp.after.max.ms lets them in.
func TestProduceTimestampBounds(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	adm := b.admin(t)
	createTopic(t, adm, "ts", 1, nil)
	cl := b.client(t, kgo.DefaultProduceTopic("ts"), kgo.RecordRetries(0))
	future := &kgo.Record{Value: []byte("later"), Timestamp: time.Now().Add(2 * time.Hour)}
	if err := cl.ProduceSync(ctx(t), future).FirstErr(); !errors.Is(err, kerr.InvalidTimestamp) {
		t.Fatalf("record 2h ahead: %v, want INVALID_TIMESTAMP", err)
	}
	resps, err := adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Name: "message.timestamp.after.max.ms", Value: kmsg.StringPtr("86400000")}}, "ts")
	if err != nil || resps[0].Err != nil {
		t.Fatalf("alter: %v %v", err, resps)
	}
	future = &kgo.Record{Value: []byte("later"), Timestamp: time.Now().Add(2 * time.Hour)}
	produceSync(t, cl, future)
}
