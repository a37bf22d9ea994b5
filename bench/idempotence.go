package main

// The idempotence workload: what an idempotent producer costs over a plain
// one with the same pipeline depth.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// idempotentInflight is how many produce requests kgo keeps in flight per
// broker for an idempotent producer: Kafka's limit per producer id
// (ProducerStateEntry.NUM_BATCHES_TO_RETAIN = 5). The plain producer of the
// idempotence comparison gets as many, so that the two differ in sequence
// numbers and their checks, not in pipeline depth.
const idempotentInflight = 5

// benchIdempotence produces cfg.idempotenceRecords records cfg.idempotenceRuns
// times with a plain and with an idempotent producer, alternating, each run a
// phase, and records the medians and their ratio in res. Each variant writes
// to its own topic, so both append to logs of the same length.
func benchIdempotence(cfg config, res *Result, phase phaseFunc, addr string, values [][]byte, compression kgo.CompressionCodec, logf func(string, ...any)) {
	topics := map[bool]string{false: "bench-plain", true: "bench-idempotent"}
	if !phase("create topic", cfg.phaseTimeout, func(ctx context.Context) error {
		for _, t := range topics {
			if err := createTopic(ctx, addr, t, 6); err != nil {
				return err
			}
		}
		return nil
	}) {
		return
	}
	runs := map[bool]*[]float64{false: &res.IdempotencePlainRunsRecPerSec, true: &res.IdempotentRunsRecPerSec}
	names := map[bool]string{false: "plain", true: "idempotent"}
	for i := 1; i <= cfg.idempotenceRuns; i++ {
		for _, idempotent := range []bool{false, true} {
			ok := phase("produce "+names[idempotent], cfg.phaseTimeout, func(ctx context.Context) error {
				opts := producerOpts(ctx, addr, compression, idempotent)
				if !idempotent {
					opts = append(opts, kgo.MaxProduceRequestsInflightPerBroker(idempotentInflight))
				}
				t, err := produceThroughput(ctx, topics[idempotent], cfg.idempotenceRecords, values, opts)
				if err == nil {
					logf("produce %s %d/%d: %d records in %v: %.0f rec/s", names[idempotent], i, cfg.idempotenceRuns, t.Records, t.Elapsed.Round(time.Millisecond), t.RecordsPerSec())
					*runs[idempotent] = append(*runs[idempotent], t.RecordsPerSec())
				}
				return err
			})
			if !ok {
				return
			}
		}
	}
	res.IdempotencePlainRecPerSec = median(res.IdempotencePlainRunsRecPerSec)
	res.IdempotentRecPerSec = median(res.IdempotentRunsRecPerSec)
	res.IdempotenceRatio = res.IdempotentRecPerSec / res.IdempotencePlainRecPerSec
	logf("idempotent/plain: %.3f", res.IdempotenceRatio)
}
