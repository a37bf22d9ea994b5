package main

// The alternating figure: every requested broker runs at once, and the same
// produce-then-consume run goes round them in turn, the order rotated each
// round. The per-broker rows of the main table are measured minutes apart,
// and on a small shared machine the drift in between (page cache writeback,
// other load) moves kbroker/null by more than the goal it is measured
// against; here each broker's runs are seconds from every other's. The
// end-to-end latency runs take turns the same way.

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// AlternateResult is the alternating figure: each broker's runs.
type AlternateResult struct {
	Runs    int               `json:"runs"`
	Records int               `json:"records"`
	Brokers []AlternateBroker `json:"brokers"`
	Error   string            `json:"error,omitempty"`
	// Each latency run's rate (records/s) and length; 0 without them.
	LatencyRate    int     `json:"latency_rate,omitempty"`
	LatencySeconds float64 `json:"latency_seconds,omitempty"`
}

// AlternateBroker holds one broker's runs, in round order.
type AlternateBroker struct {
	Broker           string    `json:"broker"`
	ProduceRecPerSec []float64 `json:"produce_rec_per_sec"`
	ConsumeRecPerSec []float64 `json:"consume_rec_per_sec"`
	// The broker's CPU time during each produce run, per record (as the
	// "broker CPU per produced rec" row).
	ProduceCPUPerRecordUs []float64 `json:"produce_broker_cpu_us_per_record"`
	// Each latency run's end-to-end p50 and p99.
	LatencyP50Ms []float64 `json:"latency_p50_ms,omitempty"`
	LatencyP99Ms []float64 `json:"latency_p99_ms,omitempty"`
}

// benchAlternate starts every broker of specs, then runs cfg.alternateRuns
// rounds: in each, every broker in turn gets a fresh topic of 6 partitions,
// cfg.idempotenceRecords records produced as in the produce row, and the
// same records consumed back; then the topic is deleted. Then, with
// cfg.alternateLatency, every broker in turn gets an end-to-end latency run
// as the main table's, cfg.alternateLatency long. The brokers not being
// measured sit idle.
func benchAlternate(ctx context.Context, cfg config, specs []brokerSpec, tmp string, logf func(string, ...any)) *AlternateResult {
	res := &AlternateResult{Runs: cfg.alternateRuns, Records: cfg.idempotenceRecords}
	if cfg.alternateLatency > 0 {
		res.LatencyRate, res.LatencySeconds = cfg.latencyRate, cfg.alternateLatency.Seconds()
	}
	fail := func(err error) *AlternateResult {
		res.Error = err.Error()
		logf("alternating figure failed: %v", err)
		return res
	}
	var live []*child
	defer func() {
		for _, c := range live {
			c.stop()
		}
	}()
	for _, spec := range specs {
		c, err := startChild(spec, tmp)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", spec.Name, err))
		}
		live = append(live, c)
		sctx, cancel := context.WithTimeout(ctx, cfg.phaseTimeout)
		_, err = waitReady(sctx, c)
		cancel()
		if err != nil {
			return fail(fmt.Errorf("%s: %w", spec.Name, err))
		}
		res.Brokers = append(res.Brokers, AlternateBroker{Broker: spec.Name})
	}
	compression, _ := codec(cfg.compression)
	values := payloads(cfg.recordSize, 1024)
	for round := range cfg.alternateRuns {
		for k := range live {
			i := (round + k) % len(live) // a different broker goes first each round
			c, b := live[i], &res.Brokers[i]
			topic := fmt.Sprintf("bench-alternate-%d", round)
			p, cpu, cn, err := produceConsume(ctx, cfg, c, topic, values, compression)
			if err != nil {
				return fail(fmt.Errorf("%s, round %d: %w", c.name, round+1, err))
			}
			b.ProduceRecPerSec = append(b.ProduceRecPerSec, p.RecordsPerSec())
			b.ConsumeRecPerSec = append(b.ConsumeRecPerSec, cn.RecordsPerSec())
			b.ProduceCPUPerRecordUs = append(b.ProduceCPUPerRecordUs, cpu)
			logf("round %d %s: produce %.0f rec/s (broker CPU %.3f µs/record), consume %.0f rec/s", round+1, c.name, p.RecordsPerSec(), cpu, cn.RecordsPerSec())
		}
		if cfg.alternateLatency == 0 {
			continue
		}
		for k := range live {
			i := (round + k) % len(live)
			c, b := live[i], &res.Brokers[i]
			lat, err := latencyRun(ctx, cfg, c, fmt.Sprintf("bench-alternate-latency-%d", round), values, compression)
			if err != nil {
				return fail(fmt.Errorf("%s, round %d latency: %w", c.name, round+1, err))
			}
			b.LatencyP50Ms = append(b.LatencyP50Ms, ms(percentile(lat, 50)))
			b.LatencyP99Ms = append(b.LatencyP99Ms, ms(percentile(lat, 99)))
			logf("round %d %s: e2e latency p50 %.3f ms, p99 %.3f ms", round+1, c.name, ms(percentile(lat, 50)), ms(percentile(lat, 99)))
		}
	}
	return res
}

// latencyRun is one alternating latency run on broker b, on a new topic of
// one partition as the main table's; it returns the sorted latencies.
func latencyRun(ctx context.Context, cfg config, b *child, topic string, values [][]byte, compression kgo.CompressionCodec) ([]time.Duration, error) {
	lctx, cancel := context.WithTimeout(ctx, cfg.alternateLatency+cfg.phaseTimeout)
	defer cancel()
	if err := createTopic(lctx, b.addr, topic, 1); err != nil {
		return nil, err
	}
	lat, err := e2eLatency(lctx, b.addr, topic, cfg.latencyRate, cfg.alternateLatency, values, compression)
	if err != nil {
		return nil, err
	}
	slices.Sort(lat)
	return lat, deleteTopic(lctx, b.addr, topic)
}

// produceConsume is one alternating run on broker b; cpuUs is b's CPU time
// during the produce run, per record.
func produceConsume(ctx context.Context, cfg config, b *child, topic string, values [][]byte, compression kgo.CompressionCodec) (p throughput, cpuUs float64, c throughput, err error) {
	pctx, cancel := context.WithTimeout(ctx, cfg.phaseTimeout)
	defer cancel()
	if err = createTopic(pctx, b.addr, topic, 6); err != nil {
		return p, 0, c, err
	}
	cpu := startCPU(b.pid())
	if p, err = produceThroughput(pctx, topic, cfg.idempotenceRecords, values, producerOpts(pctx, b.addr, compression, false)); err != nil {
		return p, 0, c, fmt.Errorf("produce: %w", err)
	}
	var cpuErr error
	if cpuUs = cpu.perRecordUs(p.Records, func(_ string, err error) { cpuErr = err }); cpuErr != nil {
		return p, 0, c, cpuErr
	}
	cctx, cancel2 := context.WithTimeout(ctx, cfg.phaseTimeout)
	defer cancel2()
	if c, err = consumeThroughput(cctx, b.addr, topic, cfg.idempotenceRecords); err != nil {
		return p, cpuUs, c, fmt.Errorf("consume: %w", err)
	}
	// Without this the in-memory brokers would hold every round's records:
	// gigabytes by the last rounds with -records 1000000.
	if err = deleteTopic(cctx, b.addr, topic); err != nil {
		return p, cpuUs, c, fmt.Errorf("delete topic: %w", err)
	}
	return p, cpuUs, c, nil
}

func printAlternate(w io.Writer, r *AlternateResult, cfg config) {
	fmt.Fprintf(w, "\nAlternating produce and consume (all brokers up at once; %d rounds of %d records of %d bytes, %s, order rotated each round; median, then every run)\n",
		r.Runs, r.Records, cfg.recordSize, cfg.compression)
	if r.LatencyRate > 0 {
		fmt.Fprintf(w, "and end-to-end latency (each round, %d rec/s for %gs per broker, also in turns)\n", r.LatencyRate, r.LatencySeconds)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  failed: %s\n", r.Error)
		return
	}
	latency := r.LatencyRate > 0
	header := fmt.Sprintf("  %-18s %14s %14s %16s", "broker", "produce rec/s", "consume rec/s", "produce CPU µs")
	if latency {
		header += fmt.Sprintf(" %12s %12s", "e2e p50 ms", "e2e p99 ms")
	}
	fmt.Fprintln(w, header+"  produce runs")
	medians := map[string][]float64{}
	for _, b := range r.Brokers {
		m := []float64{median(b.ProduceRecPerSec), median(b.ConsumeRecPerSec), median(b.ProduceCPUPerRecordUs)}
		line := fmt.Sprintf("  %-18s %14.0f %14.0f %16.3f", b.Broker, m[0], m[1], m[2])
		if latency {
			m = append(m, median(b.LatencyP50Ms), median(b.LatencyP99Ms))
			line += fmt.Sprintf(" %12.3f %12.3f", m[3], m[4])
		}
		medians[b.Broker] = m
		runs := ""
		for _, v := range b.ProduceRecPerSec {
			runs += fmt.Sprintf(" %.0f", v)
		}
		fmt.Fprintf(w, "%s  %s\n", line, runs[min(1, len(runs)):])
	}
	k, ok := medians["kbroker"]
	if !ok {
		return
	}
	for _, b := range r.Brokers {
		if b.Broker == "kbroker" {
			continue
		}
		o := medians[b.Broker]
		if slices.Contains(o, 0) {
			continue
		}
		line := fmt.Sprintf("  %-18s %13.2fx %13.2fx %15.2fx", "kbroker/"+b.Broker, k[0]/o[0], k[1]/o[1], k[2]/o[2])
		if latency {
			line += fmt.Sprintf(" %11.2fx %11.2fx", k[3]/o[3], k[4]/o[4])
		}
		fmt.Fprintln(w, line)
	}
	if latency {
		fmt.Fprintln(w, "  e2e p99 runs:")
		for _, b := range r.Brokers {
			runs := ""
			for _, v := range b.LatencyP99Ms {
				runs += fmt.Sprintf(" %.3f", v)
			}
			fmt.Fprintf(w, "  %-18s%s\n", b.Broker, runs)
		}
	}
}
