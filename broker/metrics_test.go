package broker

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// The per-request metric updates allocate nothing: children are resolved
// per API key and version, per topic, ahead of the request.
func TestRequestMetricsDoNotAllocate(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry(), &Server{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrProduceResponse()
	rt := kmsg.NewProduceResponseTopic()
	rt.Partitions = append(rt.Partitions, kmsg.NewProduceResponseTopicPartition())
	resp.Topics = append(resp.Topics, rt)
	m.topic("t")
	allocs := testing.AllocsPerRun(1000, func() {
		am := m.forAPI(protocol.ProduceKey, 11)
		m.observeRequest(am, resp, time.Millisecond, time.Microsecond)
		tm := m.topic("t")
		tm.bytesIn.Add(100)
		tm.recordsIn.Add(1)
		m.batchBytes.Observe(100)
		m.fetchWait.Observe(0)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request", allocs)
	}
	if am := m.forAPI(protocol.ProduceKey, 99); am != nil {
		t.Error("children for an unsupported version")
	}
}
