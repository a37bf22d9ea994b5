package main

// The transaction workload: how fast a transactional producer commits
// fixed-size transactions, checked afterwards by a read_committed consumer.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// txnRun is what one transactional produce run measured.
type txnRun struct {
	Records  int
	Txns     int
	Elapsed  time.Duration   // first BeginTransaction → last EndTransaction returned
	Commits  []time.Duration // each EndTransaction call
	Protocol string          // see txnProtocol
}

// txnSizes returns how many transactions of at most size records carry
// total records, and how many the last one holds.
func txnSizes(total, size int) (txns, last int) {
	if total <= 0 || size <= 0 {
		return 0, 0
	}
	txns = (total + size - 1) / size
	return txns, total - (txns-1)*size
}

// transactionsV1 caps the client at the request versions of transactions v1:
// below Produce v12, EndTxn v5 and TxnOffsetCommit v5 kgo does not use
// KIP-890 part 2 (kgo's supportsKIP890p2), whatever the broker offers.
func transactionsV1() *kversion.Versions {
	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(kmsg.Produce), 11)
	v.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
	v.SetMaxKeyVersion(int16(kmsg.TxnOffsetCommit), 4)
	return v
}

// txnProtocol names the transaction protocol kgo speaks with a broker that
// answered ApiVersions with resp, decided as kgo's supportsKIP890p2 does:
// "v2" (KIP-890 part 2: a partition joins the transaction with its first
// Produce, EndTxn bumps the epoch) when the broker's finalized
// transaction.version is at least 2 and the client is not capped to v1;
// otherwise "v1" (AddPartitionsToTxn before the first Produce to a
// partition).
func txnProtocol(resp *kmsg.ApiVersionsResponse, cappedV1 bool) string {
	if cappedV1 {
		return "v1"
	}
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" && f.MaxVersionLevel >= 2 {
			return "v2"
		}
	}
	return "v1"
}

// txnProduce produces n records to topic in transactions of size records:
// BeginTransaction, the batch with async Produce, Flush, then
// EndTransaction(TryCommit), timed on its own. The first transaction
// includes finding the coordinator and InitProducerId, as a fresh
// transactional producer's would.
func txnProduce(ctx context.Context, addr, topic string, n, size int, values [][]byte, compression kgo.CompressionCodec, v1 bool) (txnRun, error) {
	opts := append(producerOpts(ctx, addr, compression, true),
		kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID("bench-txn"),
	)
	if v1 {
		opts = append(opts, kgo.MaxVersions(transactionsV1()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return txnRun{}, err
	}
	defer cl.Close()

	// Connects before the clock starts, as the ApiVersions every client
	// sends first would.
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "kbroker-bench", "0"
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return txnRun{}, fmt.Errorf("ApiVersions: %w", err)
	}

	txns, last := txnSizes(n, size)
	run := txnRun{Protocol: txnProtocol(resp, v1), Commits: make([]time.Duration, 0, txns)}
	var failed failures
	start := time.Now()
	for i := 0; i < txns && ctx.Err() == nil; i++ {
		k := size
		if i == txns-1 {
			k = last
		}
		if err := cl.BeginTransaction(); err != nil {
			return run, fmt.Errorf("transaction %d: begin: %w", i+1, err)
		}
		for j := 0; j < k; j++ {
			cl.Produce(ctx, &kgo.Record{Value: values[(run.Records+j)%len(values)]}, failed.promise)
		}
		if err := cl.Flush(ctx); err != nil {
			return run, fmt.Errorf("transaction %d: flush: %w", i+1, err)
		}
		if err := failed.err(run.Records + k); err != nil {
			cl.EndTransaction(ctx, kgo.TryAbort) // best effort: the phase has failed anyway
			return run, fmt.Errorf("transaction %d: %w", i+1, err)
		}
		t := time.Now()
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return run, fmt.Errorf("transaction %d: commit: %w", i+1, err)
		}
		run.Commits = append(run.Commits, time.Since(t))
		run.Records += k
		run.Txns++
	}
	run.Elapsed = time.Since(start)
	if run.Records < n {
		return run, fmt.Errorf("only %d of %d records committed: %w", run.Records, n, ctx.Err())
	}
	return run, nil
}

// endRecordKey is the key of the record countCommitted writes behind the
// transactions in each partition.
const endRecordKey = "bench-txn-end"

// countCommitted counts the records a read_committed consumer sees in topic.
// It first writes one plain end record to each partition; these go in after
// the last commit returned, so every committed record lies below them, and
// the consumer reads from the start until it has seen all of them. It stops
// early, with an error, once more than want records are visible.
func countCommitted(ctx context.Context, addr, topic string, partitions int32, want int) (int, error) {
	prod, err := kgo.NewClient(
		kgo.WithContext(ctx),
		kgo.SeedBrokers(addr),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		return 0, err
	}
	defer prod.Close()
	ends := make([]*kgo.Record, partitions)
	for p := range ends {
		ends[p] = &kgo.Record{Key: []byte(endRecordKey), Partition: int32(p)}
	}
	if err := prod.ProduceSync(ctx, ends...).FirstErr(); err != nil {
		return 0, fmt.Errorf("end records: %w", err)
	}

	cons, err := kgo.NewClient(
		kgo.WithContext(ctx),
		kgo.SeedBrokers(addr),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return 0, err
	}
	defer cons.Close()
	seen := make(map[int32]bool, partitions)
	count := 0
	for len(seen) < int(partitions) {
		fs := cons.PollFetches(ctx)
		if err := fetchErr(fs); err != nil {
			return count, fmt.Errorf("read_committed consumer after %d records, end records of %d of %d partitions: %w", count, len(seen), partitions, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == endRecordKey {
				seen[r.Partition] = true
			} else {
				count++
			}
		})
		if count > want {
			return count, fmt.Errorf("at least %d records visible to read_committed, want %d", count, want)
		}
	}
	if count != want {
		return count, fmt.Errorf("%d records visible to read_committed, want %d", count, want)
	}
	return count, nil
}

// benchTransactions runs the transactional produce workload and its
// read_committed check, a phase each. The figures are recorded only when the
// check passes: a throughput with records missing or extra is no figure.
func benchTransactions(cfg config, res *Result, phase phaseFunc, addr string, values [][]byte, compression kgo.CompressionCodec, logf func(string, ...any)) {
	const topic, partitions = "bench-txn", 6
	if !phase("create topic", cfg.phaseTimeout, func(ctx context.Context) error { return createTopic(ctx, addr, topic, partitions) }) {
		return
	}
	var run txnRun
	if !phase("txn produce", cfg.phaseTimeout, func(ctx context.Context) error {
		var err error
		run, err = txnProduce(ctx, addr, topic, cfg.txnRecords, cfg.txnSize, values, compression, cfg.txnV1)
		if run.Protocol != "" {
			res.TxnProtocol = run.Protocol
		}
		if err == nil {
			logf("txn produce (transactions %s): %d records in %d transactions in %v: %.0f rec/s, %.1f txn/s",
				run.Protocol, run.Records, run.Txns, run.Elapsed.Round(time.Millisecond),
				float64(run.Records)/run.Elapsed.Seconds(), float64(run.Txns)/run.Elapsed.Seconds())
		}
		return err
	}) {
		return
	}
	if !phase("txn read_committed check", cfg.phaseTimeout, func(ctx context.Context) error {
		n, err := countCommitted(ctx, addr, topic, partitions, cfg.txnRecords)
		if err == nil {
			logf("txn read_committed check: %d records visible", n)
		}
		return err
	}) {
		return
	}
	commits := slices.Sorted(slices.Values(run.Commits))
	res.TxnRecPerSec = float64(run.Records) / run.Elapsed.Seconds()
	res.TxnPerSec = float64(run.Txns) / run.Elapsed.Seconds()
	res.TxnCommitP50Ms = ms(percentile(commits, 50))
	res.TxnCommitP99Ms = ms(percentile(commits, 99))
	logf("txn commit: p50 %.2f ms, p99 %.2f ms", res.TxnCommitP50Ms, res.TxnCommitP99Ms)
}
