package broker

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// oneProduce is a one-partition produce response and observeProduce the
// metric work of serving it: its count and latencies, the topic's bytes
// and records, the batch and fetch-wait histograms.
func oneProduce() *kmsg.ProduceResponse {
	resp := kmsg.NewPtrProduceResponse()
	rt := kmsg.NewProduceResponseTopic()
	rt.Partitions = append(rt.Partitions, kmsg.NewProduceResponseTopicPartition())
	resp.Topics = append(resp.Topics, rt)
	return resp
}

func observeProduce(m *metrics, resp *kmsg.ProduceResponse) {
	am := m.forAPI(protocol.ProduceKey, 11)
	m.observeRequest(am, resp, time.Millisecond, time.Microsecond)
	tm := m.topic("t")
	tm.bytesIn.Add(1024)
	tm.recordsIn.Add(10)
	m.batchBytes.Observe(1024)
	m.batchRecords.Observe(10)
	m.fetchWait.Observe(0)
}

// The per-request metric updates allocate nothing: children are resolved
// per API key and version, per topic, ahead of the request.
func TestRequestMetricsDoNotAllocate(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry(), &Server{}, "test", newLogFlushHistogram())
	if err != nil {
		t.Fatal(err)
	}
	resp := oneProduce()
	m.topic("t")
	if allocs := testing.AllocsPerRun(1000, func() { observeProduce(m, resp) }); allocs != 0 {
		t.Errorf("%v allocations per request", allocs)
	}
	if am := m.forAPI(protocol.ProduceKey, 99); am != nil {
		t.Error("children for an unsupported version")
	}
}

// An embedder's registry gets the broker's metrics, the log flush histogram
// among them (it is made before the others, while the log directory opens);
// a Registerer that cannot be gathered, given alone, fails the start before
// the data directory is touched.
func TestStartWithEmbedderRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg, err := ParseConfig(map[string]string{"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": t.TempDir(), "http.listener": ""})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Registerer = reg
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := make(map[string]bool)
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"kbroker_log_flush_seconds", "kbroker_build_info", "kafka_brokers"} {
		if !names[want] {
			t.Errorf("%s not in the embedder's registry", want)
		}
	}

	dir := filepath.Join(t.TempDir(), "never")
	cfg, err = ParseConfig(map[string]string{"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": dir, "http.listener": ""})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Registerer = prometheus.WrapRegistererWithPrefix("x_", reg) // not a Gatherer
	if _, err := Start(cfg); err == nil {
		t.Fatal("Start took a Registerer without a Gatherer")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused start touched its data directory: %v", err)
	}
}
