package coordinator

import "time"

// Config holds the group coordinator's broker settings; broker.ParseConfig
// fills it from Kafka's names.
type Config struct {
	GroupMinSessionTimeout     time.Duration // group.min.session.timeout.ms
	GroupMaxSessionTimeout     time.Duration // group.max.session.timeout.ms
	GroupInitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms
	GroupMaxSize               int           // group.max.size

	OffsetsRetention              time.Duration // offsets.retention.minutes
	OffsetsRetentionCheckInterval time.Duration // offsets.retention.check.interval.ms
	OffsetMetadataMaxBytes        int           // offset.metadata.max.bytes

	// KIP-848 consumer groups; ConsumerProtocolEnabled is "consumer" in
	// group.coordinator.rebalance.protocols.
	ConsumerProtocolEnabled      bool
	ConsumerHeartbeatInterval    time.Duration // group.consumer.heartbeat.interval.ms
	ConsumerSessionTimeout       time.Duration // group.consumer.session.timeout.ms
	ConsumerMinSessionTimeout    time.Duration // group.consumer.min.session.timeout.ms
	ConsumerMaxSessionTimeout    time.Duration // group.consumer.max.session.timeout.ms
	ConsumerMinHeartbeatInterval time.Duration // group.consumer.min.heartbeat.interval.ms
	ConsumerMaxHeartbeatInterval time.Duration // group.consumer.max.heartbeat.interval.ms
	ConsumerMaxSize              int           // group.consumer.max.size
	ConsumerAssignors            []string      // group.consumer.assignors, the first is the default

	// OnRebalance, if set, is called (under the coordinator lock: keep it
	// cheap) when a group finishes a rebalance, with how long it took; for
	// metrics. groupType "classic": the join phase, from PreparingRebalance
	// until every member rejoined or the rest were dropped (also when that
	// leaves the group Empty). "consumer" (KIP-848): from
	// the group epoch moving while no rebalance ran until the group is
	// Stable, every member reconciled to the target assignment; epochs
	// moving meanwhile extend the same rebalance, and one that ends with
	// the group Empty is not reported.
	OnRebalance func(groupType string, d time.Duration)
}

// DefaultConfig is Kafka 4's defaults.
func DefaultConfig() Config {
	return Config{
		GroupMinSessionTimeout:        6 * time.Second,
		GroupMaxSessionTimeout:        30 * time.Minute,
		GroupInitialRebalanceDelay:    3 * time.Second,
		GroupMaxSize:                  1<<31 - 1,
		OffsetsRetention:              7 * 24 * time.Hour,
		OffsetsRetentionCheckInterval: 10 * time.Minute,
		OffsetMetadataMaxBytes:        4096,
		ConsumerProtocolEnabled:       true,
		ConsumerHeartbeatInterval:     5 * time.Second,
		ConsumerSessionTimeout:        45 * time.Second,
		ConsumerMinSessionTimeout:     45 * time.Second,
		ConsumerMaxSessionTimeout:     60 * time.Second,
		ConsumerMinHeartbeatInterval:  5 * time.Second,
		ConsumerMaxHeartbeatInterval:  15 * time.Second,
		ConsumerMaxSize:               1<<31 - 1,
		ConsumerAssignors:             []string{"uniform", "range"},
	}
}
