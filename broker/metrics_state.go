package broker

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kbroker/kbroker/coordinator"
)

// stateCollector reports the broker's state when scraped: kafka_exporter's
// topic, partition and consumer-group series, and the log segment gauges.
// A scrape reads the topic catalog snapshot and copies the coordinator's
// committed offsets; the write path pays nothing.
//
// With kbroker.metrics.per.partition.enable=false the series labelled by
// partition are left out (kafka_consumergroup_lag_sum and
// kafka_topic_partitions remain, and the log gauges are summed per topic),
// so a broker with very many partitions keeps a bounded number of series.
type stateCollector struct{ s *Server }

const (
	segmentsHelp = "Log segments of a partition (of a topic, summed, when per-partition series are off)."
	logSizeHelp  = "Bytes in the log segments of a partition (of a topic, summed, when per-partition series are off)."
)

var (
	tpLabels  = []string{"topic", "partition"}
	cgpLabels = []string{"consumergroup", "topic", "partition"}

	descBrokers         = prometheus.NewDesc("kafka_brokers", "Number of Brokers in the Kafka Cluster.", nil, nil)
	descTopicPartitions = prometheus.NewDesc("kafka_topic_partitions", "Number of partitions for this Topic", []string{"topic"}, nil)
	descCurrentOffset   = prometheus.NewDesc("kafka_topic_partition_current_offset", "Current Offset of a Broker at Topic/Partition (the high watermark)", tpLabels, nil)
	descOldestOffset    = prometheus.NewDesc("kafka_topic_partition_oldest_offset", "Oldest Offset of a Broker at Topic/Partition (the log start offset)", tpLabels, nil)
	descISR             = prometheus.NewDesc("kafka_topic_partition_in_sync_replica", "Number of In-Sync Replicas for this Topic/Partition", tpLabels, nil)
	descLeader          = prometheus.NewDesc("kafka_topic_partition_leader", "Leader Broker ID of this Topic/Partition", tpLabels, nil)
	descReplicas        = prometheus.NewDesc("kafka_topic_partition_replicas", "Number of Replicas for this Topic/Partition", tpLabels, nil)
	descCGOffset        = prometheus.NewDesc("kafka_consumergroup_current_offset", "Current Offset of a ConsumerGroup at Topic/Partition (the committed offset)", cgpLabels, nil)
	descCGLag           = prometheus.NewDesc("kafka_consumergroup_lag", "Current Approximate Lag of a ConsumerGroup at Topic/Partition (high watermark - committed offset, at least 0)", cgpLabels, nil)
	descCGLagSum        = prometheus.NewDesc("kafka_consumergroup_lag_sum", "Current Approximate Lag of a ConsumerGroup at Topic for all partitions", []string{"consumergroup", "topic"}, nil)
	descCGMembers       = prometheus.NewDesc("kafka_consumergroup_members", "Amount of members in a consumer group", []string{"consumergroup"}, nil)
	descGroups          = prometheus.NewDesc("kbroker_groups", "Groups known to the coordinator, by state.", []string{"state"}, nil)
	descSegmentsP       = prometheus.NewDesc("kbroker_log_segments", segmentsHelp, tpLabels, nil)
	descLogSizeP        = prometheus.NewDesc("kbroker_log_size_bytes", logSizeHelp, tpLabels, nil)
	descSegmentsT       = prometheus.NewDesc("kbroker_log_segments", segmentsHelp, []string{"topic"}, nil)
	descLogSizeT        = prometheus.NewDesc("kbroker_log_size_bytes", logSizeHelp, []string{"topic"}, nil)

	// The LogCleaner's JMX gauges (kafka.log:type=LogCleaner and
	// type=LogCleanerManager) under the names a JMX exporter gives them,
	// plus kbroker's running totals.
	descCleanerBufferUtil  = prometheus.NewDesc("kafka_log_logcleaner_max_buffer_utilization_percent", "Share of the offset map (log.cleaner.dedupe.buffer.size) the last clean used, in percent.", nil, nil)
	descCleanerRecopy      = prometheus.NewDesc("kafka_log_logcleaner_cleaner_recopy_percent", "Bytes written by the log cleaner as a percentage of bytes it read, over its lifetime.", nil, nil)
	descCleanerCleanTime   = prometheus.NewDesc("kafka_log_logcleaner_max_clean_time_secs", "Duration of the last clean, in seconds.", nil, nil)
	descCleanerDirty       = prometheus.NewDesc("kafka_log_logcleanermanager_max_dirty_percent", "Largest dirty ratio of a compacted log at the cleaner's last look, in percent.", nil, nil)
	descCleanerUncleanable = prometheus.NewDesc("kafka_log_logcleanermanager_uncleanable_partitions_count", "Cleans that failed (the log was left as it was).", nil, nil)
	descCleanerRuns        = prometheus.NewDesc("kbroker_log_cleaner_runs_total", "Cleans completed by the log cleaner.", nil, nil)
	descCleanerRead        = prometheus.NewDesc("kbroker_log_cleaner_read_bytes_total", "Segment bytes read by the log cleaner.", nil, nil)
	descCleanerWritten     = prometheus.NewDesc("kbroker_log_cleaner_written_bytes_total", "Cleaned segment bytes written by the log cleaner.", nil, nil)
)

// Describe sends nothing: the collector is unchecked, since which label
// set kbroker_log_* carries depends on the per-partition switch.
func (c *stateCollector) Describe(chan<- *prometheus.Desc) {}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	if !s.ready.Load() { // recovering: no catalog yet
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	perPartition := s.cfg.MetricsPerPartition
	brokers := 1
	if s.cluster != nil { // the live (unfenced) brokers, as Metadata lists them
		brokers = 0
		for _, b := range s.cluster.ctl.Image().Brokers {
			if !b.Fenced {
				brokers++
			}
		}
	}
	gauge(descBrokers, float64(brokers))

	topics := s.logs.Topics()
	hw := make(map[string][]int64, len(topics))
	for _, t := range topics {
		gauge(descTopicPartitions, float64(len(t.Partitions)), t.Name)
		marks := make([]int64, len(t.Partitions))
		var segs, size int64
		for p, l := range t.Partitions {
			marks[p] = l.HighWatermark()
			if !perPartition {
				segs += int64(l.NumSegments())
				size += l.Size()
				continue
			}
			ps := strconv.Itoa(p)
			st := s.partitionState(t, int32(p))
			gauge(descCurrentOffset, float64(marks[p]), t.Name, ps)
			gauge(descOldestOffset, float64(l.LogStartOffset()), t.Name, ps)
			gauge(descISR, float64(len(st.ISR)), t.Name, ps)
			gauge(descLeader, float64(st.Leader), t.Name, ps)
			gauge(descReplicas, float64(len(st.Replicas)), t.Name, ps)
			gauge(descSegmentsP, float64(l.NumSegments()), t.Name, ps)
			gauge(descLogSizeP, float64(l.Size()), t.Name, ps)
		}
		if !perPartition {
			gauge(descSegmentsT, float64(segs), t.Name)
			gauge(descLogSizeT, float64(size), t.Name)
		}
		hw[t.Name] = marks
	}

	states := map[string]int{}
	var groups []coordinator.GroupSummary
	if coord := s.coord.Load(); coord != nil {
		groups = coord.groups.Describe()
	}
	for _, g := range groups {
		states[g.State]++
		gauge(descCGMembers, float64(g.Members), g.ID)
		lagSum := map[string]int64{}
		for tp, off := range g.Offsets {
			marks, ok := hw[tp.Topic]
			if !ok || tp.Partition < 0 || int(tp.Partition) >= len(marks) || off < 0 {
				continue // the topic is gone; its offsets await expiry
			}
			lag := max(marks[tp.Partition]-off, 0)
			lagSum[tp.Topic] += lag
			if perPartition {
				ps := strconv.Itoa(int(tp.Partition))
				gauge(descCGOffset, float64(off), g.ID, tp.Topic, ps)
				gauge(descCGLag, float64(lag), g.ID, tp.Topic, ps)
			}
		}
		for topic, sum := range lagSum {
			gauge(descCGLagSum, float64(sum), g.ID, topic)
		}
	}
	for state, n := range states {
		gauge(descGroups, float64(n), state)
	}

	cs := s.logs.Cleaner().Stats()
	gauge(descCleanerBufferUtil, 100*cs.MaxBufferUtilization)
	if cs.BytesRead > 0 {
		gauge(descCleanerRecopy, 100*float64(cs.BytesWritten)/float64(cs.BytesRead))
	}
	gauge(descCleanerCleanTime, cs.LastCleanSeconds)
	gauge(descCleanerDirty, 100*cs.MaxDirtyRatio)
	gauge(descCleanerUncleanable, float64(cs.UncleanablePartitions))
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descCleanerRuns, cs.Runs)
	counter(descCleanerRead, cs.BytesRead)
	counter(descCleanerWritten, cs.BytesWritten)
}
