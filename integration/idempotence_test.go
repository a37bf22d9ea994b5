package integration

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cuttingConn cuts its connection right after a Produce request was written,
// so the broker handles the request but the client never sees the answer:
// the client must retry, and the retry must not be appended twice.
type cuttingConn struct {
	net.Conn
	cut func() bool // asked for each produce request written
}

func (c *cuttingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	// kgo writes each request whole: size, then the api key.
	if err == nil && len(b) >= 6 && binary.BigEndian.Uint16(b[4:]) == 0 && c.cut() {
		// Give the broker the request, then lose the response.
		time.Sleep(20 * time.Millisecond)
		c.Conn.Close()
	}
	return n, err
}

// An idempotent producer whose connections die after each few produce
// requests retries them; every record lands exactly once, in order.
func TestIdempotentProducerRetriesDoNotDuplicate(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const topic, n = "idem", 2000
	createTopic(t, b.admin(t), topic, 2, nil)

	var produces, cuts atomic.Int64
	dialer := func(ctx context.Context, network, host string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, host)
		if err != nil {
			return nil, err
		}
		return &cuttingConn{Conn: conn, cut: func() bool {
			if produces.Add(1)%3 == 0 && cuts.Load() < 20 {
				cuts.Add(1)
				return true
			}
			return false
		}}, nil
	}
	cl := b.client(t, kgo.Dialer(dialer), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(100), kgo.ProducerLinger(time.Millisecond),
		kgo.RecordRetries(100), kgo.RetryTimeout(30*time.Second))

	var wg sync.WaitGroup
	var failed atomic.Value
	for i := 0; i < n; i++ {
		wg.Add(1)
		cl.Produce(ctx(t), &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: value(i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Store(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if cuts.Load() == 0 {
		t.Fatal("no connection was cut: the test proved nothing")
	}

	recs := consumeN(t, b.Addr(), topic, n)
	seen := make(map[string]bool)
	last := map[int32]int{0: -2, 1: -1}
	for _, r := range recs {
		if seen[string(r.Value)] {
			t.Fatalf("%s twice", r.Value)
		}
		seen[string(r.Value)] = true
		var i int
		if _, err := fmt.Sscanf(string(r.Value), "value-%d", &i); err != nil {
			t.Fatal(err)
		}
		if i != last[r.Partition]+2 {
			t.Fatalf("partition %d: %s after value %d", r.Partition, r.Value, last[r.Partition])
		}
		last[r.Partition] = i
	}
	end, err := b.admin(t).ListEndOffsets(ctx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	end.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != n {
		t.Fatalf("%d records in the log for %d produced", total, n)
	}
	dups, _ := scrape(t, b.HTTPAddr()).value("kbroker_produce_duplicates_total")
	t.Logf("%d connections cut, %v duplicate batches answered from the producer state", cuts.Load(), dups)
	if dups == 0 {
		t.Error("no retry reached the broker as a duplicate")
	}
}

// The producer state survives a restart: a retry of the last batch written
// before it is still recognised (like Kafka's, the snapshot keeps each
// producer's last batch only), and a sequence gap still refused.
func TestProducerStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	createTopic(t, b.admin(t), "idem-restart", 1, nil)
	cl := b.client(t)
	init := direct(t, cl, kmsg.NewPtrInitProducerIDRequest()).(*kmsg.InitProducerIDResponse)
	if init.ErrorCode != 0 || init.ProducerID < 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(init.ErrorCode))
	}
	pid := init.ProducerID
	produce := func(cl *kgo.Client, seq int32) *kmsg.ProduceResponseTopicPartition {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "idem-restart"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = producerBatch(encodeBatch([][]byte{[]byte("x")}), pid, seq, false)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return &direct(t, cl, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}
	for seq := int32(0); seq < 3; seq++ {
		if p := produce(cl, seq); p.ErrorCode != 0 || p.BaseOffset != int64(seq) {
			t.Fatalf("seq %d: %v at %d", seq, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
		}
	}

	b = b.restart(t)
	cl = b.client(t)
	if p := produce(cl, 2); p.ErrorCode != 0 || p.BaseOffset != 2 {
		t.Errorf("retry of seq 2 after the restart: %v at %d, want the original offset 2", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if p := produce(cl, 5); p.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("gap after the restart: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := produce(cl, 3); p.ErrorCode != 0 || p.BaseOffset != 3 {
		t.Errorf("next sequence: %v at %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	// Producer ids are never handed out twice, not even after a restart.
	again := direct(t, cl, kmsg.NewPtrInitProducerIDRequest()).(*kmsg.InitProducerIDResponse)
	if again.ProducerID <= pid {
		t.Errorf("producer id %d after a restart, the first was %d", again.ProducerID, pid)
	}
	// DescribeProducers shows the producer with its last sequence.
	dreq := kmsg.NewPtrDescribeProducersRequest()
	dt := kmsg.NewDescribeProducersRequestTopic()
	dt.Topic, dt.Partitions = "idem-restart", []int32{0}
	dreq.Topics = append(dreq.Topics, dt)
	dp := direct(t, cl, dreq).(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0]
	if len(dp.ActiveProducers) != 1 || dp.ActiveProducers[0].ProducerID != pid || dp.ActiveProducers[0].LastSequence != 3 {
		t.Errorf("DescribeProducers: %+v", dp.ActiveProducers)
	}
}
