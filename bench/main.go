// Command bench measures kbroker side by side with franz-go's kfake: start-up
// time, memory, produce and consume throughput, end-to-end latency, consumer
// groups, and idempotent and transactional produce. Each broker runs as its
// own child process on 127.0.0.1, one after another.
//
//	cd bench && go run . [-brokers kbroker,kfake-mem,kfake-disk] [-records 200000] [-json out.json]
//
// Progress goes to stderr, the table to stdout. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

type config struct {
	brokers         []string
	kbrokerSrc      string
	records         int
	recordSize      int
	compression     string
	latencyRate     int
	latencyHighRate int // the second latency run, near half of what one producer sustains
	latencyDuration time.Duration
	startupRuns     int
	phaseTimeout    time.Duration
	groupRuns       int
	groupHeartbeat  time.Duration
	// The idempotence comparison: records per run (0 on the command
	// line: half of records) and runs of each variant.
	idempotenceRecords int
	idempotenceRuns    int
	txnRecords         int
	txnSize            int
	txnV1              bool // cap kgo at transactions v1 on every broker
	jsonOut            string
	// The cluster section: run it (withCluster), or only it
	// (clusterOnly, which implies withCluster).
	withCluster bool
	clusterOnly bool
	cluster     clusterConfig
	// The scale section: run it (withScale), or only it (scaleOnly).
	withScale bool
	scaleOnly bool
	scale     scaleConfig
	// The TLS figure: kbroker's SSL listener against its PLAINTEXT one.
	withTLS bool
	tlsRuns int
	// The alternating figure's rounds (0: skip it), and the length of
	// each of its latency runs (0: no latency runs).
	alternateRuns    int
	alternateLatency time.Duration
}

// phaseFunc runs f as the named phase, bounded by timeout, and reports
// whether it succeeded; a failure is recorded in the broker's Result.
type phaseFunc func(name string, timeout time.Duration, f func(context.Context) error) bool

var allBrokers = []string{"kbroker", "kfake-mem", "kfake-disk", "null"}

func main() {
	// The kfake brokers are this same binary, re-executed.
	if len(os.Args) > 1 && os.Args[1] == "serve-kfake" {
		os.Exit(serveKfake(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "serve-null" {
		os.Exit(serveNull(os.Args[2:]))
	}

	var cfg config
	var brokers string
	flag.StringVar(&brokers, "brokers", strings.Join(allBrokers, ","), "comma-separated brokers to run: "+strings.Join(allBrokers, ", "))
	flag.StringVar(&cfg.kbrokerSrc, "kbroker-src", "../cmd/kbroker", "directory of the kbroker main package to build")
	flag.IntVar(&cfg.records, "records", 200_000, "records to produce, then consume, in the throughput runs")
	flag.IntVar(&cfg.recordSize, "record-size", 1024, "record value size in bytes")
	flag.StringVar(&cfg.compression, "compression", "snappy", "producer batch compression: none, gzip, snappy, lz4, zstd (kgo's default is snappy)")
	flag.IntVar(&cfg.latencyRate, "latency-rate", 2000, "records per second in the end-to-end latency run")
	flag.IntVar(&cfg.latencyHighRate, "latency-high-rate", 50_000, "records per second in the second end-to-end latency run (0: skip it)")
	flag.DurationVar(&cfg.latencyDuration, "latency-duration", 5*time.Second, "length of the end-to-end latency run")
	flag.IntVar(&cfg.startupRuns, "startup-runs", 5, "start-ups to time; the median is reported")
	flag.DurationVar(&cfg.phaseTimeout, "phase-timeout", 30*time.Second, "deadline for each phase: start-up, produce, consume, each group and idempotence run, transactional produce, its read_committed check (the latency phase gets -latency-duration on top)")
	flag.IntVar(&cfg.groupRuns, "group-runs", 3, "runs of each consumer group workload, each with a new group; the median is reported")
	flag.DurationVar(&cfg.groupHeartbeat, "group-heartbeat", 100*time.Millisecond, "group members' heartbeat interval (kgo's default, 3s, would dominate the rebalance times)")
	flag.IntVar(&cfg.idempotenceRecords, "idempotence-records", 0, "records per run of the idempotent vs plain produce comparison (0: half of -records)")
	flag.IntVar(&cfg.idempotenceRuns, "idempotence-runs", 5, "runs of each producer in the idempotence comparison, alternating; the median is reported")
	flag.IntVar(&cfg.txnRecords, "txn-records", 100_000, "records produced in the transactional produce run")
	flag.IntVar(&cfg.txnSize, "txn-size", 100, "records per transaction")
	flag.BoolVar(&cfg.txnV1, "txn-v1", false, "cap the transactional producer at transactions v1 (no KIP-890 part 2) on every broker, for a like-for-like comparison")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.BoolVar(&cfg.withCluster, "cluster", false, "also run the cluster section: 3 brokers, RF 3, acks=all, min.insync.replicas=2 produce and consume, and kbroker's leader failover time")
	flag.BoolVar(&cfg.clusterOnly, "cluster-only", false, "run only the cluster section (implies -cluster)")
	flag.DurationVar(&cfg.cluster.sessionTimeout, "cluster-session-timeout", 2*time.Second, "kbroker cluster: broker.session.timeout.ms (Kafka's default is 9s)")
	flag.DurationVar(&cfg.cluster.heartbeat, "cluster-heartbeat", 250*time.Millisecond, "kbroker cluster: broker.heartbeat.interval.ms (Kafka's default is 2s)")
	flag.IntVar(&cfg.cluster.failoverRuns, "failover-runs", 5, "leader kills in the failover measurement; the median and max are reported")
	flag.IntVar(&cfg.cluster.failoverRate, "failover-rate", 500, "records per second the producer writes during the failover runs")
	var scalePartitions, scaleConnections string
	flag.BoolVar(&cfg.withScale, "scale", false, "also run the scale section: partition counts (create, Metadata, RSS, start-up after a clean and a crashed stop) and connection counts")
	flag.BoolVar(&cfg.scaleOnly, "scale-only", false, "run only the scale section (implies -scale)")
	flag.StringVar(&scalePartitions, "scale-partitions", "100,1000,5000,10000", "partition counts of the scale section, in topics of 100 partitions")
	flag.StringVar(&scaleConnections, "scale-connections", "10,100,1000", "connection counts of the scale section")
	flag.BoolVar(&cfg.withTLS, "tls", false, "also run the TLS figure: kbroker with a PLAINTEXT and an SSL listener, produce and consume through each")
	flag.IntVar(&cfg.tlsRuns, "tls-runs", 3, "runs of each listener in the TLS figure, alternating; the median is reported")
	flag.IntVar(&cfg.alternateRuns, "alternate-runs", 5, "rounds of the alternating figure: every broker up at once, produce and consume runs taking turns (0: skip it)")
	flag.DurationVar(&cfg.alternateLatency, "alternate-latency", 2*time.Second, "length of each end-to-end latency run (at -latency-rate) of the alternating figure (0: none)")
	flag.Parse()
	cfg.scale.topicSize = 100
	var perr error
	if cfg.scale.partitions, perr = parseCounts(scalePartitions); perr != nil {
		log.Fatal("-scale-partitions: ", perr)
	}
	if cfg.scale.connections, perr = parseCounts(scaleConnections); perr != nil {
		log.Fatal("-scale-connections: ", perr)
	}
	if cfg.scaleOnly {
		cfg.withScale = true
	}
	if cfg.scaleOnly && cfg.clusterOnly {
		log.Fatal("-scale-only and -cluster-only exclude each other")
	}

	log.SetFlags(0)
	log.SetPrefix("bench: ")
	for _, b := range strings.Split(brokers, ",") {
		b = strings.TrimSpace(b)
		if b == "" && cfg.withTLS { // -brokers '' -tls: the TLS figure alone
			continue
		}
		if !slices.Contains(allBrokers, b) {
			log.Fatalf("unknown broker %q in -brokers (have %s)", b, strings.Join(allBrokers, ", "))
		}
		cfg.brokers = append(cfg.brokers, b)
	}
	if _, err := codec(cfg.compression); err != nil {
		log.Fatal(err)
	}
	if cfg.records < 1 || cfg.recordSize < 8 || cfg.latencyRate < 1 || cfg.startupRuns < 1 || cfg.groupRuns < 1 || cfg.groupHeartbeat <= 0 {
		log.Fatal("-records, -latency-rate, -startup-runs, -group-runs and -group-heartbeat must be positive, -record-size at least 8")
	}
	if cfg.idempotenceRecords == 0 {
		cfg.idempotenceRecords = max(cfg.records/2, 1)
	}
	if cfg.clusterOnly {
		cfg.withCluster = true
	}
	if cfg.withCluster && (cfg.cluster.sessionTimeout < time.Millisecond || cfg.cluster.heartbeat < time.Millisecond || cfg.cluster.failoverRuns < 0 || cfg.cluster.failoverRate < 1) {
		log.Fatal("-cluster-session-timeout and -cluster-heartbeat must be at least 1ms, -failover-rate positive, -failover-runs not negative")
	}
	if cfg.idempotenceRecords < 1 || cfg.idempotenceRuns < 1 || cfg.txnRecords < 1 || cfg.txnSize < 1 || cfg.alternateRuns < 0 || cfg.alternateLatency < 0 {
		log.Fatal("-idempotence-records, -idempotence-runs, -txn-records and -txn-size must be positive, -alternate-runs and -alternate-latency not negative")
	}

	// Ctrl-C cancels the phases; the deferred cleanups then stop the
	// children and remove the temporary directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, cfg))
}

func codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown -compression %q", name)
}

func run(ctx context.Context, cfg config) int {
	tmp, err := os.MkdirTemp("", "kbroker-bench-")
	if err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(tmp)

	self, err := os.Executable()
	if err != nil {
		log.Print(err)
		return 1
	}

	var results []*Result
	var specs []brokerSpec // those that ran, for the alternating figure
	for _, name := range cfg.brokers {
		if ctx.Err() != nil {
			break
		}
		var spec brokerSpec
		bin := ""
		switch name {
		case "kbroker":
			bin = filepath.Join(tmp, "kbroker")
			log.Printf("building kbroker from %s", cfg.kbrokerSrc)
			if err := buildKbroker(ctx, cfg.kbrokerSrc, bin); err != nil {
				log.Printf("kbroker: build failed, skipping it: %v", err)
				results = append(results, &Result{Broker: name, Skipped: "build failed (see stderr)"})
				continue
			}
			spec = kbrokerSpec(bin)
		case "kfake-mem":
			spec = kfakeSpec(self, false)
		case "kfake-disk":
			spec = kfakeSpec(self, true)
		case "null":
			spec = nullSpec(self)
			if cfg.clusterOnly || cfg.scaleOnly {
				continue // it has no cluster and does not scale
			}
		}
		res := &Result{Broker: name}
		if !cfg.clusterOnly && !cfg.scaleOnly {
			res = benchBroker(ctx, cfg, spec, tmp)
			specs = append(specs, spec)
		}
		if cfg.withScale && ctx.Err() == nil && name != "null" {
			benchScale(ctx, cfg, res, spec, tmp, name != "kfake-mem")
		}
		if cfg.withCluster && ctx.Err() == nil && name != "null" {
			benchCluster(ctx, cfg, res, name, bin, self, tmp)
		}
		results = append(results, res)
	}

	var altRes *AlternateResult
	if cfg.alternateRuns > 0 && len(specs) > 1 && ctx.Err() == nil {
		altRes = benchAlternate(ctx, cfg, specs, tmp, func(format string, args ...any) { log.Printf("alternating: "+format, args...) })
	}

	var tlsRes *TLSResult
	if cfg.withTLS && ctx.Err() == nil {
		bin := filepath.Join(tmp, "kbroker")
		if _, err := os.Stat(bin); err != nil {
			log.Printf("building kbroker from %s", cfg.kbrokerSrc)
			if err := buildKbroker(ctx, cfg.kbrokerSrc, bin); err != nil {
				log.Printf("kbroker: build failed: %v", err)
				return 1
			}
		}
		tlsRes = benchTLS(ctx, cfg, bin, tmp, func(format string, args ...any) { log.Printf("kbroker-tls: "+format, args...) })
	}

	var figs []figure
	if !cfg.clusterOnly && !cfg.scaleOnly {
		figs = append(figs, figures...)
	}
	if cfg.withCluster {
		figs = append(figs, clusterFigures(cfg.cluster)...)
	}
	if len(figs) > 0 && len(results) > 0 {
		printTable(os.Stdout, results, figs)
	}
	if altRes != nil {
		printAlternate(os.Stdout, altRes, cfg)
	}
	if tlsRes != nil {
		printTLS(os.Stdout, tlsRes, cfg)
	}
	if cfg.withCluster {
		fmt.Println(clusterNote)
	}
	printScale(os.Stdout, results)
	if cfg.jsonOut != "" {
		rep := report{
			Settings: map[string]any{
				"records":             cfg.records,
				"record_size":         cfg.recordSize,
				"compression":         cfg.compression,
				"latency_rate":        cfg.latencyRate,
				"latency_high_rate":   cfg.latencyHighRate,
				"latency_duration_ms": cfg.latencyDuration.Milliseconds(),
				"startup_runs":        cfg.startupRuns,
				"group_runs":          cfg.groupRuns,
				"group_heartbeat_ms":  cfg.groupHeartbeat.Milliseconds(),
				"idempotence_records": cfg.idempotenceRecords,
				"idempotence_runs":    cfg.idempotenceRuns,
				"txn_records":         cfg.txnRecords,
				"txn_size":            cfg.txnSize,
				"txn_v1":              cfg.txnV1,
				"cluster":             cfg.withCluster,
				"cluster_only":        cfg.clusterOnly,
				"scale":               cfg.withScale,
				"scale_only":          cfg.scaleOnly,
				"tls":                 cfg.withTLS,
				"alternate_runs":      cfg.alternateRuns,
				"alternate_latency_s": cfg.alternateLatency.Seconds(),
			},
			TLS:       tlsRes,
			Alternate: altRes,
			Results:   results,
		}
		if cfg.withCluster {
			rep.Settings["cluster_nodes"] = clusterNodes
			rep.Settings["cluster_session_timeout_ms"] = cfg.cluster.sessionTimeout.Milliseconds()
			rep.Settings["cluster_heartbeat_interval_ms"] = cfg.cluster.heartbeat.Milliseconds()
			rep.Settings["failover_runs"] = cfg.cluster.failoverRuns
			rep.Settings["failover_rate"] = cfg.cluster.failoverRate
		}
		if err := writeJSON(cfg.jsonOut, rep); err != nil {
			log.Print(err)
			return 1
		}
	}
	for _, r := range results {
		if r.Skipped != "" || len(r.Errors) > 0 {
			return 1
		}
	}
	if tlsRes != nil && tlsRes.Error != "" {
		return 1
	}
	if ctx.Err() != nil {
		return 1
	}
	return 0
}

// benchBroker takes all figures for one broker. Start-up is timed
// startupRuns times on fresh data directories; the last instance stays up for
// the workloads. A failed phase is recorded and the remaining ones still run
// when they can.
func benchBroker(ctx context.Context, cfg config, spec brokerSpec, tmp string) *Result {
	res := &Result{Broker: spec.Name}
	logf := func(format string, args ...any) { log.Printf(spec.Name+": "+format, args...) }
	compression, _ := codec(cfg.compression)

	var live *child
	defer func() {
		if live != nil {
			live.stop()
		}
	}()
	for i := 1; i <= cfg.startupRuns; i++ {
		c, err := startChild(spec, tmp)
		if err != nil {
			res.fail("start", err)
			return res
		}
		sctx, cancel := context.WithTimeout(ctx, cfg.phaseTimeout)
		d, err := waitReady(sctx, c)
		cancel()
		if err != nil {
			c.stop()
			res.fail("start-up", err)
			return res
		}
		logf("start-up %d/%d: %.1f ms", i, cfg.startupRuns, ms(d))
		res.StartupRunsMs = append(res.StartupRunsMs, ms(d))
		if i < cfg.startupRuns {
			c.stop()
		} else {
			live = c
		}
	}
	res.StartupMedianMs = median(res.StartupRunsMs)

	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return res
	}
	if rss, _, err := memStats(live.pid()); err != nil {
		res.fail("RSS idle", err)
	} else {
		res.RSSIdleMiB = mib(rss)
		logf("RSS idle: %.1f MiB", res.RSSIdleMiB)
	}

	values := payloads(cfg.recordSize, 1024)
	const throughputTopic, latencyTopic = "bench-throughput", "bench-latency"
	dead := false // the broker exited: no point in further phases
	var phase phaseFunc = func(name string, timeout time.Duration, f func(context.Context) error) bool {
		if dead || ctx.Err() != nil {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		err := f(pctx)
		if err == nil {
			return true
		}
		res.fail(name, err)
		logf("%s failed: %v", name, err)
		if err := live.exited(); err != nil {
			res.fail("broker", err)
			dead = true
		}
		return false
	}

	if phase("create topic", cfg.phaseTimeout, func(ctx context.Context) error { return createTopic(ctx, live.addr, throughputTopic, 6) }) {
		produced := phase("produce", cfg.phaseTimeout, func(ctx context.Context) error {
			cpu := startCPU(live.pid())
			t, err := produceThroughput(ctx, throughputTopic, cfg.records, values, producerOpts(ctx, live.addr, compression, false))
			if err == nil {
				res.ProduceRecPerSec, res.ProduceMBPerSec = t.RecordsPerSec(), t.MBPerSec()
				res.ProduceCPUPerRecordUs = cpu.perRecordUs(t.Records, res.fail)
				logf("produce: %d records in %v: %.0f rec/s, %.1f MB/s, broker CPU %.3f µs/record", t.Records, t.Elapsed.Round(time.Millisecond), res.ProduceRecPerSec, res.ProduceMBPerSec, res.ProduceCPUPerRecordUs)
			}
			return err
		})
		if produced {
			phase("consume", cfg.phaseTimeout, func(ctx context.Context) error {
				cpu := startCPU(live.pid())
				t, err := consumeThroughput(ctx, live.addr, throughputTopic, cfg.records)
				if err == nil {
					res.ConsumeRecPerSec, res.ConsumeMBPerSec = t.RecordsPerSec(), t.MBPerSec()
					res.ConsumeCPUPerRecordUs = cpu.perRecordUs(t.Records, res.fail)
					logf("consume: %d records in %v: %.0f rec/s, %.1f MB/s, broker CPU %.3f µs/record", t.Records, t.Elapsed.Round(time.Millisecond), res.ConsumeRecPerSec, res.ConsumeMBPerSec, res.ConsumeCPUPerRecordUs)
				}
				return err
			})
		}
	}

	if phase("create topic", cfg.phaseTimeout, func(ctx context.Context) error { return createTopic(ctx, live.addr, latencyTopic, 1) }) {
		phase("latency", cfg.latencyDuration+cfg.phaseTimeout, func(ctx context.Context) error {
			logf("latency: %d rec/s for %v", cfg.latencyRate, cfg.latencyDuration)
			lat, err := e2eLatency(ctx, live.addr, latencyTopic, cfg.latencyRate, cfg.latencyDuration, values, compression)
			if err != nil {
				return err
			}
			slices.Sort(lat)
			res.LatencyRecords = len(lat)
			res.LatencyP50Ms = ms(percentile(lat, 50))
			res.LatencyP99Ms = ms(percentile(lat, 99))
			res.LatencyMaxMs = ms(percentile(lat, 100))
			logf("latency: %d records: p50 %.2f ms, p99 %.2f ms, max %.2f ms", len(lat), res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs)
			return nil
		})
	}
	if cfg.latencyHighRate > 0 && phase("create topic", cfg.phaseTimeout, func(ctx context.Context) error { return createTopic(ctx, live.addr, latencyTopic+"-high", 1) }) {
		phase("latency high", cfg.latencyDuration+cfg.phaseTimeout, func(ctx context.Context) error {
			logf("latency: %d rec/s for %v", cfg.latencyHighRate, cfg.latencyDuration)
			lat, err := e2eLatency(ctx, live.addr, latencyTopic+"-high", cfg.latencyHighRate, cfg.latencyDuration, values, compression)
			if err != nil {
				return err
			}
			slices.Sort(lat)
			res.LatencyHighRecords = len(lat)
			res.LatencyHighP50Ms = ms(percentile(lat, 50))
			res.LatencyHighP99Ms = ms(percentile(lat, 99))
			logf("latency: %d records: p50 %.2f ms, p99 %.2f ms", len(lat), res.LatencyHighP50Ms, res.LatencyHighP99Ms)
			return nil
		})
	}

	if !spec.Null {
		benchGroups(cfg, res, phase, live.addr, logf)
	}
	benchIdempotence(cfg, res, phase, live.addr, values, compression, logf)
	if !spec.Null {
		benchTransactions(cfg, res, phase, live.addr, values, compression, logf)
	}

	if dead || ctx.Err() != nil {
		return res
	}
	if rss, hwm, err := memStats(live.pid()); err != nil {
		res.fail("RSS after", err)
	} else {
		res.RSSAfterMiB, res.RSSPeakMiB = mib(rss), mib(max(rss, hwm))
		logf("RSS after: %.1f MiB, peak %.1f MiB", res.RSSAfterMiB, res.RSSPeakMiB)
	}
	return res
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
