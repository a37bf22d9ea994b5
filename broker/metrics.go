package broker

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// Metrics. Two families:
//
//   - kafka_*: the topic, partition and consumer-group series of
//     kafka_exporter (github.com/danielqsj/kafka_exporter), same names and
//     label names (topic, partition, consumergroup), so its dashboards work
//     unchanged. They are computed when scraped (stateCollector): nothing is
//     counted on the write path.
//   - kbroker_*: the broker's internals, updated as requests are served.
//     Label children are resolved once (per API key and version, per
//     listener, per topic) so a request costs a few atomic adds.
//
// Everything is registered on Config.Registerer (a private registry when
// nil), never on the global default registry, so brokers in one process
// (tests) do not collide.

// metrics holds the kbroker_* instruments of one Server.
type metrics struct {
	requests       *prometheus.CounterVec
	requestHandle  *prometheus.HistogramVec
	requestSend    *prometheus.HistogramVec
	api            [kmsg.MaxKey + 1]apiTable // by key
	connsOpen      *prometheus.GaugeVec
	connsAccepted  *prometheus.CounterVec
	bytesIn        *prometheus.CounterVec
	bytesOut       *prometheus.CounterVec
	recordsIn      *prometheus.CounterVec
	recordsOut     *prometheus.CounterVec
	batchBytes     prometheus.Histogram
	batchRecords   prometheus.Histogram
	fetchWait      prometheus.Histogram
	logFlush       prometheus.Histogram
	rebalances     *prometheus.CounterVec
	rebalanceTimes *prometheus.HistogramVec
	duplicates     prometheus.Counter
	transactions   *prometheus.CounterVec

	topicsMu sync.RWMutex
	topics   map[string]*topicMetrics
}

// apiTable holds one API key's children by version. They are resolved on
// the key's first request (or by precreateAPIs, after start-up) rather than
// in newMetrics: resolving every key's took a third of a millisecond, all of
// it on the start-up path.
type apiTable struct {
	once      sync.Once
	byVersion []apiMetrics
}

// apiMetrics are the pre-resolved children for one API key and version.
type apiMetrics struct {
	name, version string
	ok            prometheus.Counter // error="NONE"
	handle, send  prometheus.Observer
}

// topicMetrics are the per-topic counters, resolved once per topic.
type topicMetrics struct {
	bytesIn, bytesOut, recordsIn, recordsOut prometheus.Counter
}

// latencyBuckets span 50µs to ~26s.
var latencyBuckets = prometheus.ExponentialBuckets(0.00005, 2, 20)

// newLogFlushHistogram is made before the other metrics: the log directory
// opens, with its flush callback, while they are built.
func newLogFlushHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kbroker_log_flush_seconds",
		Help:    "Duration of each partition log flush (fsync of its dirty segments, indexes, epoch checkpoint and directory), and of each fsync of a single node's transaction state journal, the log Kafka calls __transaction_state.",
		Buckets: latencyBuckets,
	})
}

func newMetrics(reg prometheus.Registerer, s *Server, version string, logFlush prometheus.Histogram) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbroker_requests_total",
			Help: "Requests answered, by API, API version and error: the response's top-level error code, else its first partition-level one, NONE when there is none. acks=0 produces are counted as NONE.",
		}, []string{"api", "version", "error"}),
		requestHandle: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kbroker_request_handle_seconds",
			Help:    "Time from a request being parsed to its response being ready (including a fetch's long poll and a join's wait), by API. There is no request queue: each connection's goroutine reads and handles its requests one at a time, so there is no queue-time series.",
			Buckets: latencyBuckets,
		}, []string{"api"}),
		requestSend: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kbroker_request_send_seconds",
			Help:    "Time to encode a response and write it to the socket (sendfile for fetched records), by API.",
			Buckets: latencyBuckets,
		}, []string{"api"}),
		connsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kbroker_connections_open",
			Help: "Client connections currently open, by listener.",
		}, []string{"listener"}),
		connsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbroker_connections_accepted_total",
			Help: "Client connections accepted, by listener.",
		}, []string{"listener"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbroker_topic_bytes_in_total",
			Help: "Record batch bytes appended by Produce, by topic.",
		}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbroker_topic_bytes_out_total",
			Help: "Record batch bytes sent in Fetch responses, by topic.",
		}, []string{"topic"}),
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbroker_topic_records_in_total",
			Help: "Records appended by Produce, by topic.",
		}, []string{"topic"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbroker_topic_records_out_total",
			Help: "Record offsets spanned by the batches sent in Fetch responses, by topic, read from batch headers (fetches send file regions unparsed): a sent batch counts whole, even when the fetch offset is inside it, and so do its control records and the records compacted away inside it.",
		}, []string{"topic"}),
		batchBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kbroker_produce_batch_bytes",
			Help:    "Size of each appended produce batch.",
			Buckets: prometheus.ExponentialBuckets(64, 4, 10), // 64 B .. 16 MiB
		}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kbroker_produce_batch_records",
			Help:    "Records in each appended produce batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		fetchWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kbroker_fetch_wait_seconds",
			Help:    "Time a consumer fetch waited for MinBytes (the long poll, bounded by MaxWaitMillis); 0 when answered at once.",
			Buckets: latencyBuckets,
		}),
		logFlush: logFlush,
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbroker_group_rebalances_total",
			Help: "Completed group rebalances, by group type. classic: a join phase ended (every member rejoined, or the rest were dropped at the rebalance timeout; also when the group ends up Empty). consumer (KIP-848): the group reached Stable, every member reconciled to the target assignment, after its group epoch moved (a member joined, left or was fenced, a subscription or a subscribed topic changed); epochs moving before it is Stable extend the same rebalance, and one that ends with the group Empty is not counted.",
		}, []string{"group_type"}),
		rebalanceTimes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kbroker_group_rebalance_seconds",
			Help:    "Duration of the rebalances counted by kbroker_group_rebalances_total, by group type. classic: from PreparingRebalance (including group.initial.rebalance.delay.ms) to the end of the join phase; the sync phase is not included. consumer: from the first group epoch bump to the group reaching Stable; 0 when a heartbeat completes it at once (a first member joining).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"group_type"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kbroker_produce_duplicates_total",
			Help: "Produce batches of idempotent producers that repeated one of the producer's last five and were answered with the original offsets instead of being appended again.",
		}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kbroker_transactions_total",
			Help: "Transactions completed by the transaction coordinator, by outcome: commit; abort (by the producer, or by a new producer with the same transactional.id fencing it); timeout (aborted by the coordinator after transaction.timeout.ms).",
		}, []string{"outcome"}),
		topics: make(map[string]*topicMetrics),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "kbroker_build_info",
		Help:        "Always 1; the labels carry the kbroker version.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	buildInfo.Set(1)
	for _, c := range []prometheus.Collector{
		m.requests, m.requestHandle, m.requestSend, m.connsOpen, m.connsAccepted,
		m.bytesIn, m.bytesOut, m.recordsIn, m.recordsOut, m.batchBytes, m.batchRecords, m.fetchWait, m.logFlush,
		m.rebalances, m.rebalanceTimes, m.duplicates, m.transactions, buildInfo,
		&stateCollector{s: s},
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// forAPI returns the children for key and version (both validated by
// protocol.ParseRequest); nil for a pair outside the table.
func (m *metrics) forAPI(key, version int16) *apiMetrics {
	if key < 0 || int(key) >= len(m.api) {
		return nil
	}
	t := &m.api[key]
	t.once.Do(func() { t.byVersion = m.resolveAPI(key) })
	if version < 0 || int(version) >= len(t.byVersion) {
		return nil
	}
	return &t.byVersion[version]
}

// resolveAPI creates the children of every advertised version of key; nil
// for a key that is not advertised.
func (m *metrics) resolveAPI(key int16) []apiMetrics {
	r, ok := protocol.SupportedRange(key)
	if !ok {
		return nil
	}
	name := kmsg.NameForKey(key)
	handle, send := m.requestHandle.WithLabelValues(name), m.requestSend.WithLabelValues(name)
	byVersion := make([]apiMetrics, r.Max+1)
	for v := r.Min; v <= r.Max; v++ {
		vs := strconv.Itoa(int(v))
		byVersion[v] = apiMetrics{name: name, version: vs, ok: m.requests.WithLabelValues(name, vs, "NONE"), handle: handle, send: send}
	}
	return byVersion
}

// precreateAPIs resolves every advertised API's children, so /metrics
// lists each at zero before its first request, as Kafka's request metrics
// are. The broker runs it once it serves.
func (m *metrics) precreateAPIs() {
	for _, k := range protocol.ApiVersionsKeys() {
		m.forAPI(k.ApiKey, 0)
	}
}

// observeRequest counts a request and its handle and send times.
func (m *metrics) observeRequest(am *apiMetrics, resp kmsg.Response, handle, send time.Duration) {
	if am == nil {
		return
	}
	if code := responseErrorCode(resp); code == 0 {
		am.ok.Inc()
	} else {
		name := strconv.Itoa(int(code))
		if e := kerr.ErrorForCode(code); e != nil {
			if ke, ok := e.(*kerr.Error); ok {
				name = ke.Message
			}
		}
		m.requests.WithLabelValues(am.name, am.version, name).Inc()
	}
	am.handle.Observe(handle.Seconds())
	if resp != nil {
		am.send.Observe(send.Seconds())
	}
}

// onTxnEnd counts a completed transaction by outcome.
func (m *metrics) onTxnEnd(commit, timedOut bool) {
	switch {
	case commit:
		m.transactions.WithLabelValues("commit").Inc()
	case timedOut:
		m.transactions.WithLabelValues("timeout").Inc()
	default:
		m.transactions.WithLabelValues("abort").Inc()
	}
}

// topic returns the per-topic counters, resolving them on first use.
func (m *metrics) topic(name string) *topicMetrics {
	m.topicsMu.RLock()
	tm := m.topics[name]
	m.topicsMu.RUnlock()
	if tm != nil {
		return tm
	}
	m.topicsMu.Lock()
	defer m.topicsMu.Unlock()
	if tm = m.topics[name]; tm == nil {
		tm = &topicMetrics{
			bytesIn:    m.bytesIn.WithLabelValues(name),
			bytesOut:   m.bytesOut.WithLabelValues(name),
			recordsIn:  m.recordsIn.WithLabelValues(name),
			recordsOut: m.recordsOut.WithLabelValues(name),
		}
		m.topics[name] = tm
	}
	return tm
}

// forgetTopic drops a deleted topic's series, keeping cardinality bounded
// by the live topics.
func (m *metrics) forgetTopic(name string) {
	m.topicsMu.Lock()
	delete(m.topics, name)
	m.topicsMu.Unlock()
	m.bytesIn.DeleteLabelValues(name)
	m.bytesOut.DeleteLabelValues(name)
	m.recordsIn.DeleteLabelValues(name)
	m.recordsOut.DeleteLabelValues(name)
}

func (m *metrics) onRebalance(groupType string, d time.Duration) {
	m.rebalances.WithLabelValues(groupType).Inc()
	m.rebalanceTimes.WithLabelValues(groupType).Observe(d.Seconds())
}

// responseErrorCode is the top-level error code of resp, else the first
// partition-level one, for the APIs that matter to an operator; 0 for the
// rest. It walks the response without allocating.
func responseErrorCode(resp kmsg.Response) int16 {
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				if c := r.Topics[i].Partitions[j].ErrorCode; c != 0 {
					return c
				}
			}
		}
	case *kmsg.FetchResponse:
		if r.ErrorCode != 0 {
			return r.ErrorCode
		}
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				if c := r.Topics[i].Partitions[j].ErrorCode; c != 0 {
					return c
				}
			}
		}
	case *kmsg.ListOffsetsResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				if c := r.Topics[i].Partitions[j].ErrorCode; c != 0 {
					return c
				}
			}
		}
	case *kmsg.MetadataResponse:
		for i := range r.Topics {
			if c := r.Topics[i].ErrorCode; c != 0 {
				return c
			}
		}
	case *kmsg.OffsetCommitResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				if c := r.Topics[i].Partitions[j].ErrorCode; c != 0 {
					return c
				}
			}
		}
	case *kmsg.OffsetFetchResponse:
		if r.ErrorCode != 0 {
			return r.ErrorCode
		}
		for i := range r.Groups {
			if c := r.Groups[i].ErrorCode; c != 0 {
				return c
			}
		}
	case *kmsg.FindCoordinatorResponse:
		if r.ErrorCode != 0 {
			return r.ErrorCode
		}
		for i := range r.Coordinators {
			if c := r.Coordinators[i].ErrorCode; c != 0 {
				return c
			}
		}
	case *kmsg.JoinGroupResponse:
		return r.ErrorCode
	case *kmsg.SyncGroupResponse:
		return r.ErrorCode
	case *kmsg.HeartbeatResponse:
		return r.ErrorCode
	case *kmsg.LeaveGroupResponse:
		return r.ErrorCode
	case *kmsg.ListGroupsResponse:
		return r.ErrorCode
	case *kmsg.DescribeGroupsResponse:
		for i := range r.Groups {
			if c := r.Groups[i].ErrorCode; c != 0 {
				return c
			}
		}
	case *kmsg.ApiVersionsResponse:
		return r.ErrorCode
	case *kmsg.CreateTopicsResponse:
		for i := range r.Topics {
			if c := r.Topics[i].ErrorCode; c != 0 {
				return c
			}
		}
	case *kmsg.DeleteTopicsResponse:
		for i := range r.Topics {
			if c := r.Topics[i].ErrorCode; c != 0 {
				return c
			}
		}
	case *kmsg.DeleteGroupsResponse:
		for i := range r.Groups {
			if c := r.Groups[i].ErrorCode; c != 0 {
				return c
			}
		}
	}
	return 0
}
