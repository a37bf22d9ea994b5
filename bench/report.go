package main

// Results, the helpers that summarise them, and the printed table.

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result holds one broker's figures. A zero figure means "not measured"
// (every real figure is positive); Errors says why.
type Result struct {
	Broker  string   `json:"broker"`
	Skipped string   `json:"skipped,omitempty"` // why the broker did not run at all
	Errors  []string `json:"errors,omitempty"`

	StartupRunsMs   []float64 `json:"startup_runs_ms,omitempty"`
	StartupMedianMs float64   `json:"startup_median_ms"`

	RSSIdleMiB  float64 `json:"rss_idle_mib"`
	RSSAfterMiB float64 `json:"rss_after_mib"`
	RSSPeakMiB  float64 `json:"rss_peak_mib"` // VmHWM at the end: the peak over the whole life

	ProduceRecPerSec float64 `json:"produce_records_per_sec"`
	ProduceMBPerSec  float64 `json:"produce_mb_per_sec"`
	ConsumeRecPerSec float64 `json:"consume_records_per_sec"`
	ConsumeMBPerSec  float64 `json:"consume_mb_per_sec"`
	// The broker process's CPU time over the produce and consume runs, per
	// record: unlike throughput, it does not depend on how the client and the
	// broker share the machine's cores.
	ProduceCPUPerRecordUs float64 `json:"produce_broker_cpu_us_per_record"`
	ConsumeCPUPerRecordUs float64 `json:"consume_broker_cpu_us_per_record"`

	LatencyRecords int     `json:"latency_records"`
	LatencyP50Ms   float64 `json:"latency_p50_ms"`
	LatencyP99Ms   float64 `json:"latency_p99_ms"`
	LatencyMaxMs   float64 `json:"latency_max_ms"`

	LatencyHighRecords int     `json:"latency_high_records"`
	LatencyHighP50Ms   float64 `json:"latency_high_p50_ms"`
	LatencyHighP99Ms   float64 `json:"latency_high_p99_ms"`

	GroupJoinRunsMs        []float64 `json:"group_join_first_record_runs_ms,omitempty"`
	GroupJoinFirstRecordMs float64   `json:"group_join_first_record_median_ms"`
	RebalanceJoinRunsMs    []float64 `json:"rebalance_join_runs_ms,omitempty"`
	RebalanceJoinMs        float64   `json:"rebalance_join_median_ms"` // all members started → partitions settled
	RebalanceLeaveRunsMs   []float64 `json:"rebalance_leave_runs_ms,omitempty"`
	RebalanceLeaveMs       float64   `json:"rebalance_leave_median_ms"` // one member closed → settled across the rest

	IdempotencePlainRunsRecPerSec []float64 `json:"idempotence_plain_runs_records_per_sec,omitempty"`
	IdempotencePlainRecPerSec     float64   `json:"idempotence_plain_median_records_per_sec"`
	IdempotentRunsRecPerSec       []float64 `json:"idempotent_runs_records_per_sec,omitempty"`
	IdempotentRecPerSec           float64   `json:"idempotent_median_records_per_sec"`
	IdempotenceRatio              float64   `json:"idempotent_over_plain"` // of the medians

	TxnProtocol    string  `json:"txn_protocol,omitempty"` // "v1" or "v2" (KIP-890 part 2), as kgo negotiated it
	TxnRecPerSec   float64 `json:"txn_records_per_sec"`    // these four only when the read_committed check passed
	TxnPerSec      float64 `json:"txn_per_sec"`
	TxnCommitP50Ms float64 `json:"txn_commit_p50_ms"`
	TxnCommitP99Ms float64 `json:"txn_commit_p99_ms"`

	// The cluster section (-cluster): 3 brokers, RF 3, acks=all,
	// min.insync.replicas=2.
	ClusterProduceRecPerSec float64 `json:"cluster_produce_records_per_sec"`
	ClusterProduceMBPerSec  float64 `json:"cluster_produce_mb_per_sec"`
	ClusterConsumeRecPerSec float64 `json:"cluster_consume_records_per_sec"`
	ClusterConsumeMBPerSec  float64 `json:"cluster_consume_mb_per_sec"`

	FailoverSessionTimeoutMs int64     `json:"failover_session_timeout_ms,omitempty"` // broker.session.timeout.ms
	FailoverHeartbeatMs      int64     `json:"failover_heartbeat_interval_ms,omitempty"`
	FailoverRunsMs           []float64 `json:"failover_runs_ms,omitempty"` // leader killed → first record sent after it acknowledged
	FailoverMedianMs         float64   `json:"failover_median_ms"`
	FailoverMaxMs            float64   `json:"failover_max_ms"`

	// The scale section (-scale).
	ScalePartitions  []scalePartitionStep `json:"scale_partitions,omitempty"`
	ScaleConnections []scaleConnStep      `json:"scale_connections,omitempty"`
}

func (r *Result) fail(phase string, err error) {
	r.Errors = append(r.Errors, phase+": "+err.Error())
}

// figure is one row of the table.
type figure struct {
	Name         string
	Unit         string
	HigherBetter bool
	Value        func(*Result) float64
}

var figures = []figure{
	{"start-up (median)", "ms", false, func(r *Result) float64 { return r.StartupMedianMs }},
	{"RSS idle", "MiB", false, func(r *Result) float64 { return r.RSSIdleMiB }},
	{"RSS after run", "MiB", false, func(r *Result) float64 { return r.RSSAfterMiB }},
	{"RSS peak (VmHWM)", "MiB", false, func(r *Result) float64 { return r.RSSPeakMiB }},
	{"produce", "rec/s", true, func(r *Result) float64 { return r.ProduceRecPerSec }},
	{"produce", "MB/s", true, func(r *Result) float64 { return r.ProduceMBPerSec }},
	{"consume", "rec/s", true, func(r *Result) float64 { return r.ConsumeRecPerSec }},
	{"consume", "MB/s", true, func(r *Result) float64 { return r.ConsumeMBPerSec }},
	{"broker CPU per produced rec", "µs", false, func(r *Result) float64 { return r.ProduceCPUPerRecordUs }},
	{"broker CPU per consumed rec", "µs", false, func(r *Result) float64 { return r.ConsumeCPUPerRecordUs }},
	{"e2e latency p50", "ms", false, func(r *Result) float64 { return r.LatencyP50Ms }},
	{"e2e latency p99", "ms", false, func(r *Result) float64 { return r.LatencyP99Ms }},
	{"e2e latency max", "ms", false, func(r *Result) float64 { return r.LatencyMaxMs }},
	{"e2e latency p50, high rate", "ms", false, func(r *Result) float64 { return r.LatencyHighP50Ms }},
	{"e2e latency p99, high rate", "ms", false, func(r *Result) float64 { return r.LatencyHighP99Ms }},
	{"group join → first record", "ms", false, func(r *Result) float64 { return r.GroupJoinFirstRecordMs }},
	{fmt.Sprintf("rebalance %d members: join", rebalanceMembers), "ms", false, func(r *Result) float64 { return r.RebalanceJoinMs }},
	{"rebalance: 1 member leaves", "ms", false, func(r *Result) float64 { return r.RebalanceLeaveMs }},
	{fmt.Sprintf("produce plain, %d in flight", idempotentInflight), "rec/s", true, func(r *Result) float64 { return r.IdempotencePlainRecPerSec }},
	{"produce idempotent", "rec/s", true, func(r *Result) float64 { return r.IdempotentRecPerSec }},
	{"idempotent / plain", "ratio", true, func(r *Result) float64 { return r.IdempotenceRatio }},
	{"txn produce", "rec/s", true, func(r *Result) float64 { return r.TxnRecPerSec }},
	{"txn produce", "txn/s", true, func(r *Result) float64 { return r.TxnPerSec }},
	{"txn commit p50", "ms", false, func(r *Result) float64 { return r.TxnCommitP50Ms }},
	{"txn commit p99", "ms", false, func(r *Result) float64 { return r.TxnCommitP99Ms }},
}

// clusterFigures are the rows of the cluster section; the failover rows
// name the session timeout and heartbeat they were measured with.
func clusterFigures(cc clusterConfig) []figure {
	fo := fmt.Sprintf("(session %v, heartbeat %v)", cc.sessionTimeout, cc.heartbeat)
	return []figure{
		{"cluster produce RF 3", "rec/s", true, func(r *Result) float64 { return r.ClusterProduceRecPerSec }},
		{"cluster produce RF 3", "MB/s", true, func(r *Result) float64 { return r.ClusterProduceMBPerSec }},
		{"cluster consume RF 3", "rec/s", true, func(r *Result) float64 { return r.ClusterConsumeRecPerSec }},
		{"cluster consume RF 3", "MB/s", true, func(r *Result) float64 { return r.ClusterConsumeMBPerSec }},
		{"failover median " + fo, "ms", false, func(r *Result) float64 { return r.FailoverMedianMs }},
		{"failover max " + fo, "ms", false, func(r *Result) float64 { return r.FailoverMaxMs }},
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, or 0 if it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// median of xs (not modified); the mean of the middle two for even counts.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// compare returns kbroker/other and who wins that figure; ok is false when
// either side was not measured.
func compare(f figure, kbroker, other float64, otherName string) (ratio float64, winner string, ok bool) {
	if kbroker <= 0 || other <= 0 {
		return 0, "", false
	}
	ratio = kbroker / other
	switch {
	case kbroker == other:
		winner = "tie"
	case (kbroker > other) == f.HigherBetter:
		winner = "kbroker"
	default:
		winner = otherName
	}
	return ratio, winner, true
}

// formatValue prints with about three significant digits.
func formatValue(v float64) string {
	switch {
	case v <= 0:
		return "-"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// printTable writes one row per figure in figs: each broker's value (the
// best one marked *), and, when kbroker ran, kbroker/kfake ratios naming the
// winner.
func printTable(w io.Writer, results []*Result, figs []figure) {
	var ran []*Result
	var kb *Result
	for _, r := range results {
		if r.Skipped != "" {
			continue
		}
		ran = append(ran, r)
		if r.Broker == "kbroker" {
			kb = r
		}
	}
	var others []*Result // what kbroker is compared with
	if kb != nil {
		for _, r := range ran {
			if r != kb {
				others = append(others, r)
			}
		}
	}

	if len(ran) == 0 {
		fmt.Fprintln(w, "no broker ran.")
	} else {
		printRows(w, ran, kb, others, figs)
	}
	for _, r := range results {
		if r.Skipped != "" {
			fmt.Fprintf(w, "%s: skipped: %s\n", r.Broker, r.Skipped)
		}
		for _, e := range r.Errors {
			fmt.Fprintf(w, "%s: %s\n", r.Broker, e)
		}
	}
}

func printRows(w io.Writer, ran []*Result, kb *Result, others []*Result, figs []figure) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"figure", "unit", "better"}
	for _, r := range ran {
		head = append(head, r.Broker)
	}
	for _, o := range others {
		head = append(head, "kbroker/"+o.Broker)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))

	for _, f := range figs {
		better := "lower"
		if f.HigherBetter {
			better = "higher"
		}
		row := []string{f.Name, f.Unit, better}
		best := bestIndex(f, ran)
		for i, r := range ran {
			cell := formatValue(f.Value(r))
			if i == best && len(ran) > 1 {
				cell += " *"
			}
			row = append(row, cell)
		}
		for _, o := range others {
			ratio, winner, ok := compare(f, f.Value(kb), f.Value(o), o.Broker)
			if !ok {
				row = append(row, "-")
				continue
			}
			row = append(row, fmt.Sprintf("%.2fx (%s)", ratio, winner))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()

	if len(ran) > 1 {
		fmt.Fprint(w, "* best in row.")
		if len(others) > 0 {
			fmt.Fprint(w, " Ratios are kbroker/peer; the winner is in brackets. null stores nothing but memory: kbroker/null is the share of the client-bound limit kbroker reaches.")
		}
		fmt.Fprintln(w)
	}
	var protocols []string
	for _, r := range ran {
		if r.TxnProtocol != "" {
			protocols = append(protocols, r.Broker+" "+r.TxnProtocol)
		}
	}
	if len(protocols) > 0 {
		fmt.Fprintf(w, "Transactions protocol as negotiated by kgo: %s (v2 is KIP-890 part 2).\n", strings.Join(protocols, ", "))
	}
}

// bestIndex is the index of the best measured value in the row, or -1.
func bestIndex(f figure, rs []*Result) int {
	best := -1
	for i, r := range rs {
		v := f.Value(r)
		if v <= 0 {
			continue
		}
		if best < 0 || (f.HigherBetter && v > f.Value(rs[best])) || (!f.HigherBetter && v < f.Value(rs[best])) {
			best = i
		}
	}
	return best
}

// report is what -json writes.
type report struct {
	Settings  map[string]any   `json:"settings"`
	Results   []*Result        `json:"results"`
	TLS       *TLSResult       `json:"tls,omitempty"`
	Alternate *AlternateResult `json:"alternate,omitempty"`
}

func writeJSON(path string, rep report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
