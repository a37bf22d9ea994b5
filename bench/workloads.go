package main

// The measurements. Each takes a context that bounds it in time, and a record
// count that bounds it in size.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// waitReady polls with Metadata requests until one succeeds, returning how
// long that took since the process was started.
func waitReady(ctx context.Context, c *child) (time.Duration, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.addr),
		// Retry almost at once: the backoff would otherwise be part of
		// the measured start-up time.
		kgo.RetryBackoffFn(func(int) time.Duration { return time.Millisecond }),
	)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	for {
		req := kmsg.NewPtrMetadataRequest() // nil Topics: all topics
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && len(resp.Brokers) > 0 {
			return time.Since(c.started), nil
		}
		if exitErr := c.exited(); exitErr != nil {
			return 0, exitErr
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("no Metadata response: %v (last error: %v)", ctx.Err(), err)
		}
		time.Sleep(time.Millisecond)
	}
}

func createTopic(ctx context.Context, addr, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err != nil {
		return err
	}
	return resp.Err
}

// deleteTopic deletes topic with kadm, as createTopic made it.
func deleteTopic(ctx context.Context, addr, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).DeleteTopic(ctx, topic)
	if err != nil {
		return err
	}
	return resp.Err
}

// payloads returns the fixed record values: n distinct values, each half
// pseudo-random bytes and half a repeated phrase, so compression has about
// half to gain. They are distinct because identical neighbours in a batch
// would compress to nothing; 1024 of them cover a default 1 MB batch. The
// seed is fixed so every broker gets the same bytes.
func payloads(size, n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	const phrase = "kbroker benchmark record "
	vs := make([][]byte, n)
	for i := range vs {
		b := make([]byte, size)
		half := size / 2
		for j := 0; j < half; j++ {
			b[j] = byte(r.Uint32())
		}
		for j := half; j < size; j++ {
			b[j] = phrase[(j-half)%len(phrase)]
		}
		vs[i] = b
	}
	return vs
}

// failures counts failed produce promises and keeps the first error.
type failures struct {
	mu    sync.Mutex
	n     int
	first error
}

func (f *failures) promise(_ *kgo.Record, err error) {
	if err == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.first = err
	}
	f.n++
}

func (f *failures) err(sent int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d records failed, first: %w", f.n, sent, f.first)
}

// throughput is what a produce or consume run achieved.
type throughput struct {
	Records int
	Bytes   int64 // record value bytes
	Elapsed time.Duration
}

func (t throughput) RecordsPerSec() float64 { return float64(t.Records) / t.Elapsed.Seconds() }
func (t throughput) MBPerSec() float64      { return float64(t.Bytes) / 1e6 / t.Elapsed.Seconds() }

// producerOpts are the options every bench producer shares. kgo is
// idempotent by default; idempotent false disables it, which also drops kgo
// to one produce request in flight per broker unless the caller raises it
// with MaxProduceRequestsInflightPerBroker. ctx bounds the client's requests
// too: an idempotent producer otherwise waits for in-flight records however
// long the broker takes.
func producerOpts(ctx context.Context, addr string, compression kgo.CompressionCodec, idempotent bool) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.WithContext(ctx),
		kgo.SeedBrokers(addr),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(compression),
	}
	if !idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	return opts
}

// produceThroughput sends n records to topic as fast as the broker
// acknowledges them, with a producer made from opts (see producerOpts).
// kgo blocks Produce once MaxBufferedRecords are in flight, which bounds
// memory without us pacing anything.
func produceThroughput(ctx context.Context, topic string, n int, values [][]byte, opts []kgo.Opt) (throughput, error) {
	opts = append(slices.Clip(opts),
		kgo.DefaultProduceTopic(topic),
		kgo.MaxBufferedRecords(10_000),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return throughput{}, err
	}
	defer cl.Close()

	var failed failures
	start := time.Now()
	sent := 0
	var bytes int64
	// The value slices are shared: kgo never writes to them.
	for ; sent < n && ctx.Err() == nil; sent++ {
		v := values[sent%len(values)]
		bytes += int64(len(v))
		cl.Produce(ctx, &kgo.Record{Value: v}, failed.promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return throughput{}, fmt.Errorf("flush after %d records: %w", sent, err)
	}
	elapsed := time.Since(start)
	if err := failed.err(sent); err != nil {
		return throughput{}, err
	}
	if sent < n {
		return throughput{}, fmt.Errorf("only %d of %d records sent: %w", sent, n, ctx.Err())
	}
	return throughput{Records: n, Bytes: bytes, Elapsed: elapsed}, nil
}

// consumeThroughput reads n records back from the start of topic with a fresh
// client and no consumer group; extra adds client options (TLS for the TLS figure).
func consumeThroughput(ctx context.Context, addr, topic string, n int, extra ...kgo.Opt) (throughput, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, extra...)...)
	if err != nil {
		return throughput{}, err
	}
	defer cl.Close()

	start := time.Now()
	var t throughput
	for t.Records < n {
		fs := cl.PollFetches(ctx)
		if err := fetchErr(fs); err != nil {
			return throughput{}, fmt.Errorf("after %d of %d records: %w", t.Records, n, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			t.Records++
			t.Bytes += int64(len(r.Value))
		})
	}
	t.Elapsed = time.Since(start)
	return t, nil
}

// fetchErr returns the first error in fs; kgo reports a done context as a
// fetch error too.
func fetchErr(fs kgo.Fetches) error {
	for _, fe := range fs.Errors() {
		if fe.Topic == "" {
			return fe.Err // client closed or context done
		}
		return fmt.Errorf("%s[%d]: %w", fe.Topic, fe.Partition, fe.Err)
	}
	return nil
}

// e2eLatency produces rate records/s for dur with linger 0 while a second
// client consumes them, and returns receive time minus the send time stamped
// in each value. A warm-up record (stamp 0) is produced first and awaited, so
// the consumer's connection and first fetch are not part of the figures.
func e2eLatency(ctx context.Context, addr, topic string, rate int, dur time.Duration, values [][]byte, compression kgo.CompressionCodec) ([]time.Duration, error) {
	total := int(float64(rate) * dur.Seconds())
	if total < 1 || len(values[0]) < 8 {
		return nil, errors.New("latency run needs at least one record of at least 8 bytes")
	}

	cons, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	prod, err := kgo.NewClient(append(producerOpts(ctx, addr, compression, false),
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return nil, err
	}
	defer prod.Close()

	warm := make(chan struct{})
	type consumed struct {
		lat []time.Duration
		err error
	}
	out := make(chan consumed, 1)
	go func() {
		lat := make([]time.Duration, 0, total)
		warmed := false
		for len(lat) < total {
			fs := cons.PollFetches(ctx)
			now := time.Now().UnixNano()
			if err := fetchErr(fs); err != nil {
				out <- consumed{lat, fmt.Errorf("consumer after %d of %d records: %w", len(lat), total, err)}
				return
			}
			var bad error
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) < 8 {
					bad = fmt.Errorf("record at %s[%d]@%d has a %d-byte value, want %d", r.Topic, r.Partition, r.Offset, len(r.Value), len(values[0]))
					return
				}
				sent := int64(binary.BigEndian.Uint64(r.Value))
				if sent == 0 {
					if !warmed {
						warmed = true
						close(warm)
					}
					return
				}
				lat = append(lat, time.Duration(now-sent))
			})
			if bad != nil {
				out <- consumed{lat, bad}
				return
			}
		}
		out <- consumed{lat, nil}
	}()

	warmup := append([]byte(nil), values[0]...)
	binary.BigEndian.PutUint64(warmup, 0)
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: warmup}).FirstErr(); err != nil {
		return nil, fmt.Errorf("warm-up produce: %w", err)
	}
	select {
	case <-warm:
	case res := <-out:
		return nil, fmt.Errorf("warm-up record not consumed: %v", res.err)
	}

	var failed failures
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; i < total && ctx.Err() == nil; i++ {
		// Pace against the schedule, not the previous send, so sleep
		// overshoot is caught up instead of lowering the rate.
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		v := append([]byte(nil), values[i%len(values)]...) // kgo holds it until acked
		binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
		prod.Produce(ctx, &kgo.Record{Value: v}, failed.promise)
	}
	if err := prod.Flush(ctx); err != nil {
		return nil, fmt.Errorf("producer flush: %w", err)
	}
	if err := failed.err(total); err != nil {
		return nil, err
	}
	res := <-out
	return res.lat, res.err
}
