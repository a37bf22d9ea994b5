package integration

import (
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// scrape reads /metrics of the broker's HTTP endpoint.
func scrape(t testing.TB, httpAddr string) metricSet {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	return fams
}

// metricSet is a scrape, by family name.
type metricSet map[string]*dto.MetricFamily

// value sums the samples of family name whose labels include want
// (label=value pairs); found is false when none matches.
func (ms metricSet) value(name string, want ...string) (sum float64, found bool) {
	fam := ms[name]
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

// expect fails the test unless the series (summed) equals v.
func (ms metricSet) expect(t testing.TB, v float64, name string, labels ...string) {
	t.Helper()
	got, found := ms.value(name, labels...)
	if !found {
		t.Errorf("%s%v: no such series", name, labels)
	} else if got != v {
		t.Errorf("%s%v = %v, want %v", name, labels, got, v)
	}
}

// expectAtLeast fails the test unless the series (summed) is >= v.
func (ms metricSet) expectAtLeast(t testing.TB, v float64, name string, labels ...string) {
	t.Helper()
	got, found := ms.value(name, labels...)
	if !found {
		t.Errorf("%s%v: no such series", name, labels)
	} else if got < v {
		t.Errorf("%s%v = %v, want >= %v", name, labels, got, v)
	}
}

func httpStatus(t testing.TB, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// After real traffic — N records produced one request each, read back once
// from the start by a group that commits all of them, and a second group that
// committed part — /metrics reports the offsets, the lags, the members, the
// records in and out and the request counts exactly.
func TestMetricsAfterTraffic(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	const topic, n, partial = "metered", 40, 15
	adm := b.admin(t)
	createTopic(t, adm, topic, 2, nil)

	if got := httpStatus(t, "http://"+b.HTTPAddr()+"/healthz"); got != 200 {
		t.Errorf("/healthz: %d", got)
	}
	if got := httpStatus(t, "http://"+b.HTTPAddr()+"/readyz"); got != 200 {
		t.Errorf("/readyz: %d", got)
	}

	// One record per request, all to partition 0: N Produce requests.
	pcl := b.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range n {
		produceSync(t, pcl, &kgo.Record{Topic: topic, Partition: 0, Value: value(i)})
	}

	// Group "reader" consumes everything and commits; it stays a member.
	gcl := b.client(t, kgo.ConsumerGroup("reader"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	got := 0
	c := ctx(t)
	for got < n {
		fs := gcl.PollFetches(c)
		if c.Err() != nil {
			t.Fatalf("group consume: %d of %d: %v", got, n, c.Err())
		}
		got += len(fs.Records())
	}
	if err := gcl.CommitUncommittedOffsets(c); err != nil {
		t.Fatalf("commit: %v", err)
	}

	// Group "behind" has committed partial of partition 0 and nothing of 1.
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: partial, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(c, "behind", offs); err != nil || r.Error() != nil {
		t.Fatalf("commit behind: %v %v", err, r.Error())
	}

	// A request that fails: ListOffsets of an unknown topic.
	lreq := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "no-such-topic"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	lreq.Topics = append(lreq.Topics, lt)
	if _, err := pcl.Broker(1).Request(c, lreq); err != nil { // straight to the broker, unsharded
		t.Fatalf("list offsets: %v", err)
	}

	// A request is counted after its response is written (the send time is
	// part of it), so the client may see the answer before /metrics does.
	ms := scrape(t, b.HTTPAddr())
	for deadline := time.Now().Add(10 * time.Second); ; ms = scrape(t, b.HTTPAddr()) {
		if _, found := ms.value("kbroker_requests_total", "api", "ListOffsets", "error", "UNKNOWN_TOPIC_OR_PARTITION"); found || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ms.expect(t, 1, "kafka_brokers")
	ms.expect(t, 2, "kafka_topic_partitions", "topic", topic)
	ms.expect(t, n, "kafka_topic_partition_current_offset", "topic", topic, "partition", "0")
	ms.expect(t, 0, "kafka_topic_partition_current_offset", "topic", topic, "partition", "1")
	ms.expect(t, 0, "kafka_topic_partition_oldest_offset", "topic", topic, "partition", "0")
	ms.expect(t, 1, "kafka_topic_partition_leader", "topic", topic, "partition", "0")
	ms.expect(t, 1, "kafka_topic_partition_replicas", "topic", topic, "partition", "0")
	ms.expect(t, 1, "kafka_topic_partition_in_sync_replica", "topic", topic, "partition", "0")

	ms.expect(t, n, "kafka_consumergroup_current_offset", "consumergroup", "reader", "topic", topic, "partition", "0")
	ms.expect(t, 0, "kafka_consumergroup_lag", "consumergroup", "reader", "topic", topic, "partition", "0")
	ms.expect(t, 0, "kafka_consumergroup_lag_sum", "consumergroup", "reader", "topic", topic)
	ms.expect(t, 1, "kafka_consumergroup_members", "consumergroup", "reader")
	ms.expect(t, partial, "kafka_consumergroup_current_offset", "consumergroup", "behind", "topic", topic, "partition", "0")
	ms.expect(t, n-partial, "kafka_consumergroup_lag", "consumergroup", "behind", "topic", topic, "partition", "0")
	ms.expect(t, n-partial, "kafka_consumergroup_lag_sum", "consumergroup", "behind", "topic", topic)
	ms.expect(t, 0, "kafka_consumergroup_members", "consumergroup", "behind")

	ms.expect(t, n, "kbroker_requests_total", "api", "Produce", "error", "NONE")
	ms.expect(t, 1, "kbroker_requests_total", "api", "ListOffsets", "error", "UNKNOWN_TOPIC_OR_PARTITION")
	ms.expectAtLeast(t, 1, "kbroker_requests_total", "api", "JoinGroup", "error", "NONE")
	ms.expect(t, n, "kbroker_request_handle_seconds", "api", "Produce") // histogram: sample count
	ms.expect(t, n, "kbroker_request_send_seconds", "api", "Produce")
	ms.expect(t, n, "kbroker_topic_records_in_total", "topic", topic)
	// One record per batch, each fetched once by "reader" (its only member,
	// which joined before fetching): records out are the records consumed.
	ms.expect(t, float64(got), "kbroker_topic_records_out_total", "topic", topic)
	ms.expect(t, n, "kbroker_produce_batch_records")
	ms.expectAtLeast(t, float64(n*len(value(0))), "kbroker_topic_bytes_in_total", "topic", topic)
	ms.expectAtLeast(t, float64(n*len(value(0))), "kbroker_topic_bytes_out_total", "topic", topic)
	ms.expectAtLeast(t, 1, "kbroker_fetch_wait_seconds")
	ms.expectAtLeast(t, 1, "kbroker_group_rebalances_total", "group_type", "classic")
	ms.expectAtLeast(t, 1, "kbroker_group_rebalance_seconds", "group_type", "classic")
	ms.expectAtLeast(t, 3, "kbroker_connections_open", "listener", "PLAINTEXT")
	ms.expectAtLeast(t, 3, "kbroker_connections_accepted_total", "listener", "PLAINTEXT")
	ms.expect(t, 1, "kbroker_log_segments", "topic", topic, "partition", "0")
	ms.expectAtLeast(t, float64(n*len(value(0))), "kbroker_log_size_bytes", "topic", topic, "partition", "0")
	ms.expect(t, 1, "kbroker_groups", "state", "Stable")
	ms.expectAtLeast(t, 1, "go_goroutines")
	ms.expectAtLeast(t, 1, "process_resident_memory_bytes")
	if v, _ := ms.value("kbroker_build_info"); v != 1 {
		t.Errorf("kbroker_build_info = %v", v)
	}

	// The member leaves: the gauge follows.
	gcl.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, _ := scrape(t, b.HTTPAddr()).value("kafka_consumergroup_members", "consumergroup", "reader"); v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("kafka_consumergroup_members still > 0 after the member left")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Deleting the topic drops its per-topic counters.
	if _, err := adm.DeleteTopics(c, topic); err != nil {
		t.Fatal(err)
	}
	ms = scrape(t, b.HTTPAddr())
	for _, name := range []string{"kbroker_topic_records_in_total", "kbroker_topic_records_out_total", "kafka_topic_partitions", "kafka_topic_partition_current_offset"} {
		if _, found := ms.value(name, "topic", topic); found {
			t.Errorf("%s still reports deleted topic %s", name, topic)
		}
	}
}

// kbroker.metrics.per.partition.enable=false leaves the partition-labelled
// series out and keeps the per-topic ones.
func TestMetricsWithoutPartitionSeries(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{"kbroker.metrics.per.partition.enable": "false"})
	const topic = "coarse"
	adm := b.admin(t)
	createTopic(t, adm, topic, 3, nil)
	cl := b.client(t)
	for i := range 9 {
		produceSync(t, cl, &kgo.Record{Topic: topic, Value: value(i)})
	}
	offs := kadm.Offsets{}
	for p := range int32(3) {
		offs.Add(kadm.Offset{Topic: topic, Partition: p, At: 0, LeaderEpoch: -1})
	}
	if r, err := adm.CommitOffsets(ctx(t), "g", offs); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}
	ms := scrape(t, b.HTTPAddr())
	for _, name := range []string{"kafka_topic_partition_current_offset", "kafka_consumergroup_lag", "kafka_consumergroup_current_offset"} {
		if _, found := ms[name]; found {
			t.Errorf("%s reported with per-partition series off", name)
		}
	}
	ms.expect(t, 3, "kafka_topic_partitions", "topic", topic)
	ms.expect(t, 9, "kafka_consumergroup_lag_sum", "consumergroup", "g", "topic", topic)
	ms.expect(t, 3, "kbroker_log_segments", "topic", topic)
	if fam := ms["kbroker_log_segments"]; fam != nil {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" {
					t.Errorf("kbroker_log_segments has a partition label: %v", m)
				}
			}
		}
	}
}

// Brokers in one process keep their metrics apart (no global registry).
func TestMetricsPerBroker(t *testing.T) {
	t.Parallel()
	a := startBroker(t, nil)
	b := startBroker(t, nil)
	produceSync(t, a.client(t, kgo.AllowAutoTopicCreation()), &kgo.Record{Topic: "only-a", Value: []byte("x")})
	if _, found := scrape(t, b.HTTPAddr()).value("kafka_topic_partitions", "topic", "only-a"); found {
		t.Error("broker b reports broker a's topic")
	}
	scrape(t, a.HTTPAddr()).expect(t, 1, "kafka_topic_partition_current_offset", "topic", "only-a", "partition", "0")
}
