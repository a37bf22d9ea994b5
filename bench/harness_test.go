package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, time.Duration(i))
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{[]time.Duration{7}, 50, 7},
		{[]time.Duration{7}, 100, 7},
		{[]time.Duration{1, 2, 3, 4}, 50, 2},
		{[]time.Duration{1, 2, 3, 4}, 51, 3},
		{hundred, 50, 50},
		{hundred, 99, 99},
		{hundred, 99.5, 100},
		{hundred, 100, 100},
		{hundred, 0.1, 1},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := append([]float64(nil), tc.xs...)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.xs[i] {
				t.Errorf("median modified its input: %v", in)
			}
		}
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	higher := figure{Name: "produce", HigherBetter: true}
	lower := figure{Name: "start-up"}
	for _, tc := range []struct {
		f          figure
		kb, other  float64
		wantRatio  float64
		wantWinner string
		wantOK     bool
	}{
		{higher, 200, 100, 2, "kbroker", true},
		{higher, 50, 100, 0.5, "kfake-mem", true},
		{lower, 50, 100, 0.5, "kbroker", true},
		{lower, 200, 100, 2, "kfake-mem", true},
		{lower, 100, 100, 1, "tie", true},
		{higher, 0, 100, 0, "", false}, // kbroker not measured
		{higher, 100, 0, 0, "", false}, // kfake not measured
	} {
		ratio, winner, ok := compare(tc.f, tc.kb, tc.other, "kfake-mem")
		if ratio != tc.wantRatio || winner != tc.wantWinner || ok != tc.wantOK {
			t.Errorf("compare(%s, %v, %v) = %v, %q, %v; want %v, %q, %v",
				tc.f.Name, tc.kb, tc.other, ratio, winner, ok, tc.wantRatio, tc.wantWinner, tc.wantOK)
		}
	}
}

func TestFormatValue(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{
		0:        "-",
		0.28612:  "0.286",
		1.4321:   "1.43",
		12.345:   "12.3",
		572364.4: "572364",
	} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestPrintTable(t *testing.T) {
	t.Parallel()
	results := []*Result{
		{Broker: "kbroker", StartupMedianMs: 5, ProduceRecPerSec: 300, TxnProtocol: "v1"},
		{Broker: "kfake-mem", StartupMedianMs: 10, ProduceRecPerSec: 100, TxnProtocol: "v2"},
		{Broker: "kfake-disk", Skipped: "not wanted"},
	}
	var buf bytes.Buffer
	printTable(&buf, results, figures)
	out := buf.String()
	// row returns the table row whose cells start with prefix, spaces
	// collapsed so the test does not depend on column widths.
	row := func(prefix string) string {
		for _, l := range strings.Split(out, "\n") {
			if l := strings.Join(strings.Fields(l), " "); strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("no row %q in:\n%s", prefix, out)
		return ""
	}
	for _, want := range []string{
		"figure unit better kbroker kfake-mem kbroker/kfake-mem",
		// Lower is better and kbroker took half the time.
		"start-up (median) ms lower 5.00 * 10.0 0.50x (kbroker)",
		"produce rec/s higher 300 * 100 3.00x (kbroker)",
		// Unmeasured figures show a dash, not a ratio of zeros.
		"consume MB/s higher - - -",
	} {
		prefix := strings.Join(strings.Fields(want)[:2], " ")
		if got := row(prefix); got != want {
			t.Errorf("row %q:\n got %q\nwant %q", prefix, got, want)
		}
	}
	if !strings.Contains(out, "Transactions protocol as negotiated by kgo: kbroker v1, kfake-mem v2 ") {
		t.Errorf("transactions protocols not listed:\n%s", out)
	}
	if !strings.Contains(out, "kfake-disk: skipped: not wanted") {
		t.Errorf("skipped broker not reported:\n%s", out)
	}
}

func TestParseMemStatus(t *testing.T) {
	t.Parallel()
	status := "Name:\tkbroker\nVmPeak:\t  999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n"
	rss, hwm, err := parseMemStatus(status)
	if err != nil || rss != 1024<<10 || hwm != 2048<<10 {
		t.Errorf("parseMemStatus = %d, %d, %v; want %d, %d, nil", rss, hwm, err, 1024<<10, 2048<<10)
	}
	if _, _, err := parseMemStatus("Name:\tx\n"); err == nil {
		t.Error("parseMemStatus without VmRSS: no error")
	}
}

func TestCPUTime(t *testing.T) {
	if d, err := parseSchedstat("123456789 42 7\n"); err != nil || d != 123456789 {
		t.Errorf("parseSchedstat = %v, %v; want 123.456789ms, nil", d, err)
	}
	if _, err := parseSchedstat("1 2\n"); err == nil {
		t.Error("parseSchedstat accepted two fields")
	}
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn a little CPU: the sum over this process's threads must grow.
	x := 0
	for i := range 20_000_000 {
		x += i % 7
	}
	after, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("cpuTime went from %v to %v over a busy loop (x=%d)", before, after, x)
	}
	var failed error
	m := cpuMeter{pid: os.Getpid(), start: before}
	if us := m.perRecordUs(0, func(_ string, err error) { failed = err }); us != 0 || failed != nil {
		t.Errorf("perRecordUs(0 records) = %v, %v", us, failed)
	}
	if _, err := cpuTime(-1); err == nil {
		t.Error("cpuTime(-1) succeeded")
	}
}

func TestPayloads(t *testing.T) {
	t.Parallel()
	a, b := payloads(1024, 4), payloads(1024, 4)
	for i := range a {
		if len(a[i]) != 1024 || !bytes.Equal(a[i], b[i]) {
			t.Fatalf("payload %d: not 1024 bytes or not deterministic", i)
		}
	}
	if bytes.Equal(a[0], a[1]) {
		t.Error("payloads repeat: a batch of them would compress to nothing")
	}
}

func TestAssignmentSettled(t *testing.T) {
	t.Parallel()
	set := func(ps ...int32) map[int32]bool {
		m := make(map[int32]bool)
		for _, p := range ps {
			m[p] = true
		}
		return m
	}
	for _, tc := range []struct {
		name string
		sets []map[int32]bool
		want bool
	}{
		{"no members", nil, false},
		{"even", []map[int32]bool{set(0, 1), set(2, 3)}, true},
		{"three members, four partitions", []map[int32]bool{set(0), set(1, 2), set(3)}, true},
		// The first member holds everything before the others are assigned.
		{"one holds all", []map[int32]bool{set(0, 1, 2, 3), set()}, false},
		{"uneven by two", []map[int32]bool{set(0), set(1, 2, 3)}, false},
		{"partition missing", []map[int32]bool{set(0, 1), set(2)}, false},
		{"partition twice", []map[int32]bool{set(0, 1), set(1, 2, 3)}, false},
		{"unknown partition", []map[int32]bool{set(0, 1), set(2, 7)}, false},
		{"nil set counts as empty", []map[int32]bool{set(0, 1, 2, 3), nil}, false},
	} {
		if got := assignmentSettled(tc.sets, 4); got != tc.want {
			t.Errorf("%s: assignmentSettled(%v, 4) = %v, want %v", tc.name, tc.sets, got, tc.want)
		}
	}
}

func TestOwnership(t *testing.T) {
	t.Parallel()
	o := newOwnership()
	live := []string{"a", "b"}
	o.update("a", []int32{0, 1, 2, 3}, true) // a joined first and took everything
	if o.settled(live, 4) {
		t.Fatal("settled while b owns nothing")
	}
	o.update("a", []int32{2, 3}, false) // cooperative: a revokes half ...
	o.update("b", []int32{2, 3}, true)  // ... and b gets it in the next round
	if !o.settled(live, 4) {
		t.Fatalf("not settled: %v", o.owned)
	}
	o.leave("b")
	o.update("b", []int32{2, 3}, true) // a late callback of the closing member
	if o.settled([]string{"a"}, 4) {
		t.Fatal("settled with b's partitions unowned")
	}
	o.update("a", []int32{2, 3}, true)
	if !o.settled([]string{"a"}, 4) {
		t.Fatalf("not settled after a took b's share: %v", o.owned)
	}
}

func TestTxnSizes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		total, size, txns, last int
	}{
		{20000, 100, 200, 100},
		{250, 100, 3, 50},
		{99, 100, 1, 99},
		{1, 1, 1, 1},
		{0, 100, 0, 0},
		{100, 0, 0, 0},
	} {
		txns, last := txnSizes(tc.total, tc.size)
		if txns != tc.txns || last != tc.last {
			t.Errorf("txnSizes(%d, %d) = %d, %d; want %d, %d", tc.total, tc.size, txns, last, tc.txns, tc.last)
		}
		if txns > 0 && (txns-1)*tc.size+last != tc.total {
			t.Errorf("txnSizes(%d, %d) = %d, %d: does not add up", tc.total, tc.size, txns, last)
		}
	}
}

func TestTxnProtocol(t *testing.T) {
	t.Parallel()
	resp := func(features map[string]int16) *kmsg.ApiVersionsResponse {
		r := kmsg.NewPtrApiVersionsResponse()
		for name, level := range features {
			f := kmsg.NewApiVersionsResponseFinalizedFeature()
			f.Name, f.MinVersionLevel, f.MaxVersionLevel = name, level, level
			r.FinalizedFeatures = append(r.FinalizedFeatures, f)
		}
		return r
	}
	for _, tc := range []struct {
		name     string
		features map[string]int16
		capped   bool
		want     string
	}{
		{"no features", nil, false, "v1"},
		{"transaction.version 1", map[string]int16{"transaction.version": 1}, false, "v1"},
		{"transaction.version 2", map[string]int16{"transaction.version": 2, "group.version": 1}, false, "v2"},
		{"other feature only", map[string]int16{"group.version": 2}, false, "v1"},
		{"capped", map[string]int16{"transaction.version": 2}, true, "v1"},
	} {
		if got := txnProtocol(resp(tc.features), tc.capped); got != tc.want {
			t.Errorf("%s: txnProtocol = %q, want %q", tc.name, got, tc.want)
		}
	}
	// The cap keeps kgo below every version KIP-890 part 2 needs.
	v := transactionsV1()
	for key, below := range map[kmsg.Key]int16{kmsg.Produce: 12, kmsg.EndTxn: 5, kmsg.TxnOffsetCommit: 5} {
		if got, ok := v.LookupMaxKeyVersion(int16(key)); !ok || got >= below {
			t.Errorf("transactionsV1: %s max %d (present %v), want below %d", key.Name(), got, ok, below)
		}
	}
}

func TestPrintAlternate(t *testing.T) {
	r := &AlternateResult{Runs: 3, Records: 10, Brokers: []AlternateBroker{
		{Broker: "kbroker", ProduceRecPerSec: []float64{90, 300, 100}, ConsumeRecPerSec: []float64{200, 200, 200}, ProduceCPUPerRecordUs: []float64{0.6, 0.9, 0.3}},
		{Broker: "null", ProduceRecPerSec: []float64{200, 50, 400}, ConsumeRecPerSec: []float64{100, 400, 50}, ProduceCPUPerRecordUs: []float64{0.5, 0.4, 0.2}},
	}}
	var b strings.Builder
	printAlternate(&b, r, config{recordSize: 1024, compression: "snappy"})
	out := b.String()
	// Medians: kbroker 100, 200 and 0.6 µs, null 200, 100 and 0.4 µs.
	for _, want := range []string{"3 rounds of 10 records", "90 300 100", "0.600", "kbroker/null", "0.50x", "2.00x", "1.50x"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "e2e") {
		t.Errorf("latency columns without latency runs:\n%s", out)
	}

	r.LatencyRate, r.LatencySeconds = 2000, 2
	r.Brokers[0].LatencyP50Ms, r.Brokers[0].LatencyP99Ms = []float64{0.3, 0.1, 0.5}, []float64{0.9, 0.6, 0.3}
	r.Brokers[1].LatencyP50Ms, r.Brokers[1].LatencyP99Ms = []float64{0.4, 0.4, 0.4}, []float64{0.2, 0.5, 0.6}
	b.Reset()
	printAlternate(&b, r, config{recordSize: 1024, compression: "snappy"})
	out = b.String()
	// Medians: kbroker p50 0.3 and p99 0.6 ms, null 0.4 and 0.5 ms.
	for _, want := range []string{"2000 rec/s for 2s", "e2e p99 ms", "0.75x", "1.20x", "0.900 0.600 0.300"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	r.Error = "boom"
	b.Reset()
	printAlternate(&b, r, config{})
	if !strings.Contains(b.String(), "failed: boom") || strings.Contains(b.String(), "kbroker/null") {
		t.Errorf("a failed figure prints its error alone:\n%s", b.String())
	}
}
