package broker

import (
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
	m, err := newMetrics(prometheus.NewRegistry(), &Server{}, "test")
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
