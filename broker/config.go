package broker

import (
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kbroker/kbroker/controller"
	"github.com/kbroker/kbroker/coordinator"
	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/storage"
	"github.com/kbroker/kbroker/txn"
)

// Config is the broker configuration. Fields carry Kafka's server.properties
// names in CamelCase; ParseConfig maps from those names. The zero value is
// not usable: start from DefaultConfig or ParseConfig.
type Config struct {
	NodeID int32 // node.id (broker.id is its synonym)
	// Listeners are the broker listeners kbroker binds: listeners minus
	// the controller listeners.
	Listeners []Listener
	// AdvertisedListeners are what Metadata reports to a client, per
	// listener name: advertised.listeners, by default the listeners,
	// without controller listeners in both cases.
	AdvertisedListeners []Listener
	// ControllerListeners are the listeners named in
	// controller.listener.names. In Kafka they serve the KRaft quorum;
	// kbroker is a single node without one and does not bind them.
	ControllerListeners []Listener
	// ProcessRoles is process.roles: broker, or broker and controller.
	ProcessRoles []string
	// QuorumVoters is controller.quorum.voters. More than one voter makes
	// this node a combined broker+controller of a replicated cluster (see
	// cluster.go) and binds its controller listener; none, or this node
	// alone, keeps the single-node path untouched.
	QuorumVoters []controller.Voter
	BrokerRack   string // broker.rack
	// RackAwareReplicaSelector is replica.selector.class naming Kafka's
	// RackAwareReplicaSelector: consumers that give a rack are sent to a
	// replica in it (KIP-392); otherwise every fetch is served by leaders.
	RackAwareReplicaSelector bool
	// Replication (Kafka's ReplicaManager and ReplicaFetcherThread settings).
	ReplicaLagTimeMax            time.Duration // replica.lag.time.max.ms
	ReplicaFetchWaitMax          time.Duration // replica.fetch.wait.max.ms
	ReplicaFetchMinBytes         int32         // replica.fetch.min.bytes
	ReplicaFetchMaxBytes         int32         // replica.fetch.max.bytes
	ReplicaFetchResponseMaxBytes int32         // replica.fetch.response.max.bytes
	ReplicaFetchBackoff          time.Duration // replica.fetch.backoff.ms
	// The broker's session with the controller (BrokerLifecycleManager).
	BrokerSessionTimeout    time.Duration // broker.session.timeout.ms
	BrokerHeartbeatInterval time.Duration // broker.heartbeat.interval.ms
	QuorumElectionTimeout   time.Duration // controller.quorum.election.timeout.ms
	// ControlledShutdownEnable is controlled.shutdown.enable: Close first
	// moves leadership off this broker.
	ControlledShutdownEnable bool
	LogDir                   string // log.dirs (one directory)
	NumPartitions            int32  // num.partitions
	DefaultReplicationFactor int16  // default.replication.factor
	AutoCreateTopicsEnable   bool   // auto.create.topics.enable
	DeleteTopicEnable        bool   // delete.topic.enable
	SocketRequestMaxBytes    int32  // socket.request.max.bytes
	FetchMaxBytes            int32  // fetch.max.bytes: the most one Fetch response carries
	// FailedAuthenticationDelay is connection.failed.authentication.delay.ms:
	// how long a failed SASL authentication waits before its answer and
	// the close, to slow down guessing (KIP-306).
	FailedAuthenticationDelay time.Duration
	LogRetentionCheckInterval time.Duration
	LogFlushSchedulerInterval time.Duration
	// LogCleaner is log.cleaner.enable, .threads, .dedupe.buffer.size,
	// .io.buffer.size and .backoff.ms: the compaction of cleanup.policy
	// compact topics.
	LogCleaner                storage.CleanerConfig
	OffsetsTopicNumPartitions int32 // offsets.topic.num.partitions
	// OffsetsTopicReplicationFactor is offsets.topic.replication.factor.
	OffsetsTopicReplicationFactor int16
	// ProducerIDExpiration is producer.id.expiration.ms, checked every
	// ProducerIDExpirationCheckInterval (producer.id.expiration.check.interval.ms).
	ProducerIDExpiration              time.Duration
	ProducerIDExpirationCheckInterval time.Duration

	// HTTPListener is http.listener: host:port of the HTTP endpoint serving
	// /metrics, /healthz and /readyz; empty disables it.
	HTTPListener string
	// MetricsPerPartition is kbroker.metrics.per.partition.enable: false
	// leaves out the series labelled by partition (see stateCollector).
	MetricsPerPartition bool
	// Registerer receives the broker's collectors and Gatherer serves
	// /metrics. Both nil: a private registry per Server, with the Go and
	// process collectors. A given registry gets the broker's own collectors
	// only (prometheus' default registry has the other two). A Registerer
	// that is also a Gatherer (a *prometheus.Registry) serves both.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// AuthorizerClassName is authorizer.class.name: empty (no
	// authorization) or Kafka's StandardAuthorizer.
	AuthorizerClassName string
	// SuperUsers is super.users (principals separated by ';'): allowed
	// everything, ACLs or not.
	SuperUsers []string
	// AllowEveryoneIfNoACLFound is allow.everyone.if.no.acl.found: what a
	// resource without any ACL gets (false: super users only).
	AllowEveryoneIfNoACLFound bool

	// Version is reported by kbroker_build_info and the start-up log.
	Version string
	// ClusterID is the cluster id a new data directory is formatted with
	// (the apache/kafka image's CLUSTER_ID); empty: a random one. An
	// existing directory keeps its own.
	ClusterID string

	// Group holds the group coordinator's settings (group.*, offsets.*).
	Group coordinator.Config
	// Txn holds the transaction coordinator's (transaction.*,
	// transactional.id.*).
	Txn txn.Config

	groupMaxSize, consumerMaxSize, offsetMetadataMaxBytes int32 // staged into Group

	// Staged for resolveListeners.
	securityProtocols       map[string]string // listener name → protocol
	controllerListenerNames []string
	interBrokerListenerName string
	quorumBootstrapServers  int

	// LogDefaults are the topic-config defaults derived from the broker's
	// log.* settings (log.segment.bytes → segment.bytes, ...).
	LogDefaults storage.LogConfig

	// Props holds every key that was set explicitly, as given; DescribeConfigs
	// reports these as STATIC_BROKER_CONFIG and the rest as DEFAULT_CONFIG.
	Props map[string]string

	// security holds the ssl.*, sasl.* and listener.name.* settings as
	// given; listenerSecurity is what they resolve to per broker listener
	// (resolveSecurity).
	security         map[string]string
	listenerSecurity map[string]*listenerSecurity
	// ScramBootstrapUsers is kbroker.scram.bootstrap.users: SCRAM
	// credentials created at start for users that have none yet.
	ScramBootstrapUsers []ScramBootstrapUser

	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger
}

// Listener is one entry of listeners / advertised.listeners:
// NAME://host:port, with the security protocol listener.security.protocol.map
// gives its name: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
type Listener struct {
	Name             string // upper case, as Kafka normalises listener names
	SecurityProtocol string
	Host             string // empty: every interface (advertised: this host's name)
	Port             int
}

// Addr is host:port.
func (l Listener) Addr() string { return net.JoinHostPort(l.Host, strconv.Itoa(l.Port)) }

func (l Listener) String() string { return l.Name + "://" + l.Addr() }

// configDef is one broker config: its Kafka name, default (as Kafka writes
// it) and how a value lands in Config. The table is the single source for
// parsing, defaults and DescribeConfigs.
type configDef struct {
	name  string
	def   string
	apply func(c *Config, v string) error
}

var brokerConfigDefs = []configDef{
	{"node.id", "1", intInto(func(c *Config) *int32 { return &c.NodeID }, 0, math.MaxInt32)},
	{"broker.id", "", intInto(func(c *Config) *int32 { return new(int32) }, 0, math.MaxInt32)}, // must equal node.id: see resolveNodeID
	{"process.roles", "broker,controller", func(c *Config, v string) error {
		c.ProcessRoles = nil
		for _, r := range strings.Split(v, ",") {
			r = strings.TrimSpace(r)
			if r != "broker" && r != "controller" {
				return fmt.Errorf("unknown role %q (want broker, controller)", r)
			}
			if slices.Contains(c.ProcessRoles, r) {
				return fmt.Errorf("role %s appears twice", r)
			}
			c.ProcessRoles = append(c.ProcessRoles, r)
		}
		if !slices.Contains(c.ProcessRoles, "broker") {
			return fmt.Errorf("kbroker is a broker: %q lacks the broker role", v)
		}
		return nil
	}},
	// The three listener keys are parsed here and resolved together, with
	// the protocol map and controller names, by resolveListeners.
	{"listeners", "PLAINTEXT://localhost:9092", func(c *Config, v string) (err error) {
		c.Listeners, err = parseListeners(v, true)
		return err
	}},
	{"advertised.listeners", "", func(c *Config, v string) (err error) {
		c.AdvertisedListeners, err = parseListeners(v, false)
		return err
	}},
	{"listener.security.protocol.map", defaultSecurityProtocolMap, func(c *Config, v string) (err error) {
		c.securityProtocols, err = parseSecurityProtocolMap(v)
		return err
	}},
	{"controller.listener.names", "", func(c *Config, v string) error {
		c.controllerListenerNames = nil
		for _, n := range strings.Split(v, ",") {
			if n = strings.ToUpper(strings.TrimSpace(n)); n != "" {
				c.controllerListenerNames = append(c.controllerListenerNames, n)
			}
		}
		return nil
	}},
	{"inter.broker.listener.name", "", func(c *Config, v string) error {
		c.interBrokerListenerName = strings.ToUpper(v)
		return nil
	}},
	{"security.inter.broker.protocol", "PLAINTEXT", func(c *Config, v string) error {
		if !slices.Contains(securityProtocols, v) {
			return fmt.Errorf("invalid value %q (want one of %s)", v, strings.Join(securityProtocols, ", "))
		}
		return nil
	}},
	// One voter (or none) is a single node; more make a cluster whose
	// metadata quorum runs on the controller listeners (resolveQuorum).
	{"controller.quorum.voters", "", func(c *Config, v string) (err error) {
		c.QuorumVoters = nil
		if strings.TrimSpace(v) == "" {
			return nil
		}
		c.QuorumVoters, err = controller.ParseVoters(v)
		return err
	}},
	// A dynamic quorum (KIP-853) is not supported: one bootstrap server
	// (Kafka 4's single-node server.properties) is a single node; a
	// cluster names its voters (resolveQuorum).
	{"controller.quorum.bootstrap.servers", "", func(c *Config, v string) error {
		servers := strings.Split(v, ",")
		for _, addr := range servers {
			if _, _, err := net.SplitHostPort(strings.TrimSpace(addr)); err != nil {
				return fmt.Errorf("server %q is not host:port", addr)
			}
		}
		c.quorumBootstrapServers = len(servers)
		return nil
	}},
	{"broker.rack", "", func(c *Config, v string) error { c.BrokerRack = v; return nil }},
	{"replica.selector.class", "", func(c *Config, v string) error {
		switch v {
		case "org.apache.kafka.common.replica.RackAwareReplicaSelector":
			c.RackAwareReplicaSelector = true
		case "org.apache.kafka.common.replica.LeaderSelector":
			c.RackAwareReplicaSelector = false
		default:
			return fmt.Errorf("unknown selector %q (want org.apache.kafka.common.replica.RackAwareReplicaSelector or LeaderSelector)", v)
		}
		return nil
	}},
	{"replica.lag.time.max.ms", "30000", msInto(func(c *Config) *time.Duration { return &c.ReplicaLagTimeMax }, 1, time.Millisecond)},
	{"replica.fetch.wait.max.ms", "500", msInto(func(c *Config) *time.Duration { return &c.ReplicaFetchWaitMax }, 0, time.Millisecond)},
	{"replica.fetch.min.bytes", "1", intInto(func(c *Config) *int32 { return &c.ReplicaFetchMinBytes }, 1, math.MaxInt32)},
	{"replica.fetch.max.bytes", "1048576", intInto(func(c *Config) *int32 { return &c.ReplicaFetchMaxBytes }, 0, math.MaxInt32)},
	{"replica.fetch.response.max.bytes", "10485760", intInto(func(c *Config) *int32 { return &c.ReplicaFetchResponseMaxBytes }, 0, math.MaxInt32)},
	{"replica.fetch.backoff.ms", "1000", msInto(func(c *Config) *time.Duration { return &c.ReplicaFetchBackoff }, 0, time.Millisecond)},
	{"broker.session.timeout.ms", "9000", msInto(func(c *Config) *time.Duration { return &c.BrokerSessionTimeout }, 1, time.Millisecond)},
	{"broker.heartbeat.interval.ms", "2000", msInto(func(c *Config) *time.Duration { return &c.BrokerHeartbeatInterval }, 1, time.Millisecond)},
	{"controller.quorum.election.timeout.ms", "1000", msInto(func(c *Config) *time.Duration { return &c.QuorumElectionTimeout }, 1, time.Millisecond)},
	{"controlled.shutdown.enable", "true", boolInto(func(c *Config) *bool { return &c.ControlledShutdownEnable })},
	{"log.dirs", "kbroker-data", func(c *Config, v string) error {
		dirs := strings.Split(v, ",")
		if len(dirs) != 1 || strings.TrimSpace(dirs[0]) == "" {
			return fmt.Errorf("exactly one directory is supported, got %q", v)
		}
		c.LogDir = strings.TrimSpace(dirs[0])
		return nil
	}},
	{"num.partitions", "1", intInto(func(c *Config) *int32 { return &c.NumPartitions }, 1, math.MaxInt32)},
	{"default.replication.factor", "1", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 16)
		if err != nil || n < 1 {
			return fmt.Errorf("invalid value %q", v)
		}
		c.DefaultReplicationFactor = int16(n)
		return nil
	}},
	{"auto.create.topics.enable", "true", boolInto(func(c *Config) *bool { return &c.AutoCreateTopicsEnable })},
	{"delete.topic.enable", "true", boolInto(func(c *Config) *bool { return &c.DeleteTopicEnable })},
	{"socket.request.max.bytes", "104857600", intInto(func(c *Config) *int32 { return &c.SocketRequestMaxBytes }, 1024, math.MaxInt32)},
	{"fetch.max.bytes", "57671680", intInto(func(c *Config) *int32 { return &c.FetchMaxBytes }, 1024, math.MaxInt32)},
	{"connection.failed.authentication.delay.ms", "100", msInto(func(c *Config) *time.Duration { return &c.FailedAuthenticationDelay }, 0, time.Millisecond)},
	{"log.retention.check.interval.ms", "300000", durationInto(func(c *Config) *time.Duration { return &c.LogRetentionCheckInterval })},
	{"log.flush.scheduler.interval.ms", "1000", durationInto(func(c *Config) *time.Duration { return &c.LogFlushSchedulerInterval })},
	{"log.cleaner.enable", "true", boolInto(func(c *Config) *bool { return &c.LogCleaner.Enable })},
	{"log.cleaner.threads", "1", func(c *Config, v string) error {
		var n int64
		if err := longInto(func(*Config) *int64 { return &n }, 0, 64)(c, v); err != nil {
			return err
		}
		c.LogCleaner.Threads = int(n)
		return nil
	}},
	{"log.cleaner.dedupe.buffer.size", "134217728", longInto(func(c *Config) *int64 { return &c.LogCleaner.DedupeBufferSize }, 0, math.MaxInt64)},
	{"log.cleaner.io.buffer.size", "524288", func(c *Config, v string) error {
		var n int64
		if err := longInto(func(*Config) *int64 { return &n }, 0, math.MaxInt32)(c, v); err != nil {
			return err
		}
		c.LogCleaner.IOBufferSize = int(n)
		return nil
	}},
	{"log.cleaner.backoff.ms", "15000", msInto(func(c *Config) *time.Duration { return &c.LogCleaner.Backoff }, 0, time.Millisecond)},
	{"producer.id.expiration.ms", "86400000", msInto(func(c *Config) *time.Duration { return &c.ProducerIDExpiration }, 1, time.Millisecond)},
	{"producer.id.expiration.check.interval.ms", "600000", msInto(func(c *Config) *time.Duration { return &c.ProducerIDExpirationCheckInterval }, 1, time.Millisecond)},

	// kbroker's own keys (Kafka has none for these).
	{"http.listener", "localhost:9644", func(c *Config, v string) error {
		if _, port, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("invalid value %q (want host:port, or empty to disable): %v", v, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("invalid value %q: bad port", v)
		}
		c.HTTPListener = v
		return nil
	}},
	{"kbroker.metrics.per.partition.enable", "true", boolInto(func(c *Config) *bool { return &c.MetricsPerPartition })},

	// Authorization (see authorizer.go).
	{"authorizer.class.name", "", func(c *Config, v string) error {
		switch v {
		case standardAuthorizer:
			c.AuthorizerClassName = v
		case "kafka.security.authorizer.AclAuthorizer":
			return fmt.Errorf("%s kept ACLs in ZooKeeper and was removed in Kafka 4: use %s", v, standardAuthorizer)
		default:
			return fmt.Errorf("unknown authorizer %q (want %s, or empty for none)", v, standardAuthorizer)
		}
		return nil
	}},
	{"super.users", "", func(c *Config, v string) error {
		c.SuperUsers = acl.ParseSuperUsers(v)
		for _, u := range c.SuperUsers {
			if typ, name, ok := strings.Cut(u, ":"); !ok || typ == "" || name == "" {
				return fmt.Errorf("principal %q is not Type:Name (e.g. User:admin)", u)
			}
		}
		return nil
	}},
	{"allow.everyone.if.no.acl.found", "false", boolInto(func(c *Config) *bool { return &c.AllowEveryoneIfNoACLFound })},

	// The transaction coordinator (Kafka's TransactionStateManagerConfig).
	{"transaction.max.timeout.ms", "900000", intInto(func(c *Config) *int32 { return &c.Txn.TransactionMaxTimeoutMs }, 1, math.MaxInt32)},
	{"transactional.id.expiration.ms", "604800000", longInto(func(c *Config) *int64 { return &c.Txn.TransactionalIDExpirationMs }, 1, math.MaxInt32)},
	{"transaction.abort.timed.out.transaction.cleanup.interval.ms", "10000", longInto(func(c *Config) *int64 { return &c.Txn.AbortTimedOutTransactionCleanupIntervalMs }, 1, math.MaxInt32)},
	{"transaction.remove.expired.transaction.cleanup.interval.ms", "3600000", longInto(func(c *Config) *int64 { return &c.Txn.RemoveExpiredTransactionalIDCleanupIntervalMs }, 1, math.MaxInt32)},
	// Transaction state lives in meta.db, not in __transaction_state: its
	// topic settings are accepted (compose files set them) and checked, and
	// change nothing.
	{"transaction.state.log.replication.factor", "1", longInto(func(c *Config) *int64 { return new(int64) }, 1, math.MaxInt16)},
	{"transaction.state.log.min.isr", "1", longInto(func(c *Config) *int64 { return new(int64) }, 1, math.MaxInt32)},
	{"transaction.state.log.num.partitions", "50", longInto(func(c *Config) *int64 { return new(int64) }, 1, math.MaxInt32)},

	// The group coordinator (Kafka's GroupCoordinatorConfig).
	{"offsets.topic.num.partitions", "50", intInto(func(c *Config) *int32 { return &c.OffsetsTopicNumPartitions }, 1, math.MaxInt32)},
	// One broker: every internal topic has one replica. A cluster's
	// __consumer_offsets gets this many.
	{"offsets.topic.replication.factor", "1", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 16)
		if err != nil || n < 1 {
			return fmt.Errorf("invalid value %q", v)
		}
		c.OffsetsTopicReplicationFactor = int16(n)
		return nil
	}},
	{"group.initial.rebalance.delay.ms", "3000", msInto(func(c *Config) *time.Duration { return &c.Group.GroupInitialRebalanceDelay }, 0, time.Millisecond)},
	{"group.min.session.timeout.ms", "6000", msInto(func(c *Config) *time.Duration { return &c.Group.GroupMinSessionTimeout }, 0, time.Millisecond)},
	{"group.max.session.timeout.ms", "1800000", msInto(func(c *Config) *time.Duration { return &c.Group.GroupMaxSessionTimeout }, 1, time.Millisecond)},
	{"group.max.size", "2147483647", intInto(func(c *Config) *int32 { return &c.groupMaxSize }, 1, math.MaxInt32)},
	{"offsets.retention.minutes", "10080", msInto(func(c *Config) *time.Duration { return &c.Group.OffsetsRetention }, 1, time.Minute)},
	{"offsets.retention.check.interval.ms", "600000", msInto(func(c *Config) *time.Duration { return &c.Group.OffsetsRetentionCheckInterval }, 1, time.Millisecond)},
	{"offset.metadata.max.bytes", "4096", intInto(func(c *Config) *int32 { return &c.offsetMetadataMaxBytes }, 0, math.MaxInt32)},
	{"group.coordinator.rebalance.protocols", "classic,consumer", func(c *Config, v string) error {
		c.Group.ConsumerProtocolEnabled = false
		for _, p := range strings.Split(v, ",") {
			switch strings.TrimSpace(p) {
			case "classic":
			case "consumer":
				c.Group.ConsumerProtocolEnabled = true
			default:
				return fmt.Errorf("unknown protocol %q (want classic, consumer)", p)
			}
		}
		if !strings.Contains(v, "classic") {
			return fmt.Errorf("classic must be enabled")
		}
		return nil
	}},
	{"group.consumer.heartbeat.interval.ms", "5000", msInto(func(c *Config) *time.Duration { return &c.Group.ConsumerHeartbeatInterval }, 1, time.Millisecond)},
	{"group.consumer.min.heartbeat.interval.ms", "5000", msInto(func(c *Config) *time.Duration { return &c.Group.ConsumerMinHeartbeatInterval }, 1, time.Millisecond)},
	{"group.consumer.max.heartbeat.interval.ms", "15000", msInto(func(c *Config) *time.Duration { return &c.Group.ConsumerMaxHeartbeatInterval }, 1, time.Millisecond)},
	{"group.consumer.session.timeout.ms", "45000", msInto(func(c *Config) *time.Duration { return &c.Group.ConsumerSessionTimeout }, 1, time.Millisecond)},
	{"group.consumer.min.session.timeout.ms", "45000", msInto(func(c *Config) *time.Duration { return &c.Group.ConsumerMinSessionTimeout }, 1, time.Millisecond)},
	{"group.consumer.max.session.timeout.ms", "60000", msInto(func(c *Config) *time.Duration { return &c.Group.ConsumerMaxSessionTimeout }, 1, time.Millisecond)},
	{"group.consumer.max.size", "2147483647", intInto(func(c *Config) *int32 { return &c.consumerMaxSize }, 1, math.MaxInt32)},
	{"group.consumer.assignors", "uniform,range", func(c *Config, v string) error {
		c.Group.ConsumerAssignors = nil
		for _, a := range strings.Split(v, ",") {
			name, ok := consumerAssignors[strings.TrimSpace(a)]
			if !ok {
				return fmt.Errorf("unknown assignor %q (want uniform, range)", a)
			}
			c.Group.ConsumerAssignors = append(c.Group.ConsumerAssignors, name)
		}
		if len(c.Group.ConsumerAssignors) == 0 {
			return fmt.Errorf("no assignor in %q", v)
		}
		return nil
	}},

	// Topic-config defaults. Kafka's hours/minutes/ms triples resolve ms >
	// minutes > hours: listed coarse to fine, the finest set one is applied
	// last and wins.
	{"log.segment.bytes", "1073741824", logDefault("segment.bytes")},
	{"log.roll.hours", "168", logScaled("segment.ms", time.Hour)},
	{"log.roll.ms", "", logDefault("segment.ms")},
	{"log.index.size.max.bytes", "10485760", logDefault("segment.index.bytes")},
	{"log.index.interval.bytes", "4096", logDefault("index.interval.bytes")},
	{"log.retention.hours", "168", logScaled("retention.ms", time.Hour)},
	{"log.retention.minutes", "", logScaled("retention.ms", time.Minute)},
	{"log.retention.ms", "", logDefault("retention.ms")},
	{"log.retention.bytes", "-1", logDefault("retention.bytes")},
	{"log.cleanup.policy", "delete", logDefault("cleanup.policy")},
	{"message.max.bytes", "1048588", logDefault("max.message.bytes")},
	{"log.message.timestamp.type", "CreateTime", logDefault("message.timestamp.type")},
	{"log.flush.interval.messages", "9223372036854775807", logDefault("flush.messages")},
	{"log.flush.interval.ms", "", logDefault("flush.ms")},
	{"min.insync.replicas", "1", logDefault("min.insync.replicas")},

	// Broker defaults of the other Kafka topic configs (see configs.go):
	// validated with the topic config's rules, reported by DescribeConfigs.
	{"log.segment.delete.delay.ms", "60000", logDefault("file.delete.delay.ms")},
	{"log.roll.jitter.hours", "0", topicDefault("segment.jitter.ms", time.Hour)},
	{"log.roll.jitter.ms", "", topicDefault("segment.jitter.ms", 0)},
	{"log.cleaner.delete.retention.ms", "86400000", logDefault("delete.retention.ms")},
	{"log.cleaner.min.compaction.lag.ms", "0", logDefault("min.compaction.lag.ms")},
	{"log.cleaner.max.compaction.lag.ms", "9223372036854775807", logDefault("max.compaction.lag.ms")},
	{"log.cleaner.min.cleanable.ratio", "0.5", logDefault("min.cleanable.dirty.ratio")},
	{"log.message.timestamp.before.max.ms", "9223372036854775807", logDefault("message.timestamp.before.max.ms")},
	{"log.message.timestamp.after.max.ms", "3600000", logDefault("message.timestamp.after.max.ms")},
	{"log.preallocate", "false", topicDefault("preallocate", 0)},
	{"log.local.retention.ms", "-2", topicDefault("local.retention.ms", 0)},
	{"log.local.retention.bytes", "-2", topicDefault("local.retention.bytes", 0)},
	{"unclean.leader.election.enable", "false", topicDefault("unclean.leader.election.enable", 0)},
	{"compression.type", "producer", topicDefault("compression.type", 0)},
	{"compression.gzip.level", "-1", topicDefault("compression.gzip.level", 0)},
	{"compression.lz4.level", "9", topicDefault("compression.lz4.level", 0)},
	{"compression.zstd.level", "3", topicDefault("compression.zstd.level", 0)},
}

// DefaultConfig is the embedded default: one PLAINTEXT listener on
// localhost:9092, data in ./kbroker-data.
func DefaultConfig() Config {
	c, err := ParseConfig(nil)
	if err != nil {
		panic("broker: default config does not parse: " + err.Error())
	}
	return c
}

// ParseConfig builds a Config from Kafka-named properties over the defaults.
// Unknown keys are returned as warnings, not errors, so a server.properties
// written for Kafka starts kbroker; an invalid value is an error naming the
// key.
func ParseConfig(props map[string]string) (Config, error) {
	// Txn.TransactionVersion is 2: ApiVersions finalizes transaction.version 2.
	c := Config{LogDefaults: storage.DefaultLogConfig(), Group: coordinator.DefaultConfig(), Txn: txn.DefaultConfig(), Props: map[string]string{}}
	for _, d := range brokerConfigDefs {
		v, set := props[d.name]
		if set {
			c.Props[d.name] = v
		} else {
			v = d.def
		}
		if v == "" {
			continue
		}
		if err := d.apply(&c, strings.TrimSpace(v)); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", d.name, err)
		}
	}
	c.Group.GroupMaxSize = int(c.groupMaxSize)
	c.Group.ConsumerMaxSize = int(c.consumerMaxSize)
	c.Group.OffsetMetadataMaxBytes = int(c.offsetMetadataMaxBytes)
	if err := c.resolveNodeID(props); err != nil {
		return Config{}, err
	}
	if err := c.resolveListeners(props); err != nil {
		return Config{}, err
	}
	if err := c.resolveQuorum(); err != nil {
		return Config{}, err
	}
	if err := c.resolveSecurity(props); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Clustered reports whether this node is one of several voters of a
// metadata quorum: a replicated cluster rather than a single node.
func (c *Config) Clustered() bool { return len(c.QuorumVoters) > 1 }

// resolveQuorum checks a cluster's quorum settings: kbroker nodes are
// combined broker+controller nodes (KRaft combined mode), each a voter
// whose controller listener is the address the voters name.
func (c *Config) resolveQuorum() error {
	if !c.Clustered() {
		if c.quorumBootstrapServers > 1 && len(c.QuorumVoters) == 0 {
			return fmt.Errorf("config controller.quorum.bootstrap.servers: a dynamic quorum (KIP-853) is not supported: list the cluster's voters in controller.quorum.voters")
		}
		return nil
	}
	i := slices.IndexFunc(c.QuorumVoters, func(v controller.Voter) bool { return v.ID == c.NodeID })
	if i < 0 {
		return fmt.Errorf("config controller.quorum.voters: node.id %d is not a voter: kbroker cluster nodes are combined broker+controller nodes", c.NodeID)
	}
	if !slices.Contains(c.ProcessRoles, "controller") {
		return fmt.Errorf("config process.roles: a node in controller.quorum.voters must have the controller role")
	}
	if len(c.ControllerListeners) != 1 {
		return fmt.Errorf("config controller.listener.names: a cluster node needs exactly one controller listener in listeners, found %d", len(c.ControllerListeners))
	}
	if self := c.QuorumVoters[i]; c.ControllerListeners[0].Port != 0 && c.ControllerListeners[0].Port != self.Port {
		return fmt.Errorf("config listeners: controller listener %s does not listen on this voter's port %d", c.ControllerListeners[0], self.Port)
	}
	return nil
}

// InterBrokerListener is the advertised listener other brokers reach this
// one on: inter.broker.listener.name, else the first advertised listener.
func (c *Config) InterBrokerListener() string {
	if c.interBrokerListenerName != "" {
		return c.interBrokerListenerName
	}
	return c.AdvertisedListeners[0].Name
}

// resolveNodeID applies broker.id, node.id's synonym: either may be set
// alone, and both must agree (KafkaConfig.populateSynonyms).
func (c *Config) resolveNodeID(props map[string]string) error {
	b, ok := props["broker.id"]
	if !ok {
		return nil
	}
	id, _ := strconv.ParseInt(strings.TrimSpace(b), 10, 32) // checked by its configDef
	if _, set := props["node.id"]; set && int32(id) != c.NodeID {
		return fmt.Errorf("config broker.id: %d differs from node.id %d: set them to the same value", id, c.NodeID)
	}
	c.NodeID = int32(id)
	return nil
}

// defaultSecurityProtocolMap is Kafka's listener.security.protocol.map
// default: each protocol is a listener name of its own.
const defaultSecurityProtocolMap = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"

var securityProtocols = []string{"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}

func parseSecurityProtocolMap(v string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, proto, ok := strings.Cut(kv, ":")
		name, proto = strings.ToUpper(strings.TrimSpace(name)), strings.ToUpper(strings.TrimSpace(proto))
		if !ok || name == "" {
			return nil, fmt.Errorf("entry %q is not NAME:PROTOCOL", kv)
		}
		if !slices.Contains(securityProtocols, proto) {
			return nil, fmt.Errorf("entry %q: unknown security protocol %s (want one of %s)", kv, proto, strings.Join(securityProtocols, ", "))
		}
		m[name] = proto
	}
	return m, nil
}

// resolveListeners splits listeners into broker and controller listeners,
// gives each its security protocol, and checks them as KafkaConfig does:
// advertised names must be broker listeners, no advertised 0.0.0.0, an
// explicit inter.broker.listener.name must be advertised. Broker listeners
// may be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (resolveSecurity);
// controller listeners speak PLAINTEXT whatever the map says.
func (c *Config) resolveListeners(props map[string]string) error {
	protocols := c.securityProtocols
	if _, set := props["listener.security.protocol.map"]; !set {
		// With the default map, controller listeners not in it are
		// PLAINTEXT (KafkaConfig.effectiveListenerSecurityProtocolMap).
		protocols = maps.Clone(protocols)
		for _, n := range c.controllerListenerNames {
			if _, ok := protocols[n]; !ok {
				protocols[n] = "PLAINTEXT"
			}
		}
	}
	resolve := func(key string, ls []Listener) error {
		for i := range ls {
			p, ok := protocols[ls[i].Name]
			if !ok {
				return fmt.Errorf("config %s: no security protocol for listener %s in listener.security.protocol.map", key, ls[i].Name)
			}
			ls[i].SecurityProtocol = p
		}
		return nil
	}
	if err := resolve("listeners", c.Listeners); err != nil {
		return err
	}
	isController := func(l Listener) bool { return slices.Contains(c.controllerListenerNames, l.Name) }
	all := c.Listeners
	c.Listeners, c.ControllerListeners = nil, nil
	for _, l := range all {
		if isController(l) {
			c.ControllerListeners = append(c.ControllerListeners, l)
			continue
		}
		c.Listeners = append(c.Listeners, l)
	}
	if len(c.Listeners) == 0 {
		return fmt.Errorf("config listeners: no broker listener: every listener is in controller.listener.names")
	}

	advertised := c.AdvertisedListeners
	if _, set := props["advertised.listeners"]; !set {
		advertised = all
	}
	if err := resolve("advertised.listeners", advertised); err != nil {
		return err
	}
	c.AdvertisedListeners = nil
	for _, a := range advertised {
		if isController(a) {
			continue
		}
		if !slices.ContainsFunc(c.Listeners, func(l Listener) bool { return l.Name == a.Name }) {
			return fmt.Errorf("config advertised.listeners: listener %s is not a broker listener in listeners", a.Name)
		}
		if a.Host == "0.0.0.0" || a.Host == "::" {
			key := "advertised.listeners"
			if _, set := props[key]; !set {
				key = "listeners (advertised when advertised.listeners is not set)"
			}
			return fmt.Errorf("config %s: listener %s cannot advertise the non-routable address %s: set advertised.listeners to a routable host", key, a.Name, a.Host)
		}
		c.AdvertisedListeners = append(c.AdvertisedListeners, a)
	}
	if len(c.AdvertisedListeners) == 0 {
		return fmt.Errorf("config advertised.listeners: no broker listener is advertised")
	}

	if n := c.interBrokerListenerName; n != "" {
		if _, set := props["security.inter.broker.protocol"]; set {
			return fmt.Errorf("config inter.broker.listener.name: set it or security.inter.broker.protocol, not both")
		}
		if !slices.ContainsFunc(c.AdvertisedListeners, func(l Listener) bool { return l.Name == n }) {
			return fmt.Errorf("config inter.broker.listener.name: %s is not an advertised broker listener", n)
		}
	}
	return nil
}

// UnknownKeys returns the keys of props that kbroker does not know, for a
// start-up warning.
func UnknownKeys(props map[string]string) []string {
	var unknown []string
	for k := range props {
		if configDefByName(k) == nil && !isSecurityKey(k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	return unknown
}

func configDefByName(name string) *configDef {
	for i := range brokerConfigDefs {
		if brokerConfigDefs[i].name == name {
			return &brokerConfigDefs[i]
		}
	}
	return nil
}

// parseListeners parses "NAME://host:port,NAME2://host:port" ([::1] for
// IPv6; an empty host is every interface). Names are upper-cased as Kafka
// normalises them; bound listeners need distinct ports (0 excepted: the
// OS picks one).
func parseListeners(v string, bound bool) ([]Listener, error) {
	var out []Listener
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		name, hostport, ok := strings.Cut(s, "://")
		if !ok || name == "" {
			return nil, fmt.Errorf("listener %q is not NAME://host:port", s)
		}
		host, portStr, err := net.SplitHostPort(hostport)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %v", s, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("listener %q: bad port", s)
		}
		name = strings.ToUpper(name)
		if slices.ContainsFunc(out, func(l Listener) bool { return l.Name == name }) {
			return nil, fmt.Errorf("listener name %s appears twice", name)
		}
		if bound && port != 0 && slices.ContainsFunc(out, func(l Listener) bool { return l.Port == port }) {
			return nil, fmt.Errorf("listener %q: port %d is used by another listener", s, port)
		}
		out = append(out, Listener{Name: name, Host: host, Port: port})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no listener in %q", v)
	}
	return out, nil
}

func intInto(field func(*Config) *int32, lo, hi int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("invalid value %q (want an integer in [%d, %d])", v, lo, hi)
		}
		*field(c) = int32(n)
		return nil
	}
}

func longInto(field func(*Config) *int64, lo, hi int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("invalid value %q (want an integer in [%d, %d])", v, lo, hi)
		}
		*field(c) = n
		return nil
	}
}

func boolInto(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("invalid value %q (want true or false)", v)
		}
		*field(c) = b
		return nil
	}
}

func durationInto(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("invalid value %q (want milliseconds > 0)", v)
		}
		*field(c) = time.Duration(n) * time.Millisecond
		return nil
	}
}

// msInto parses a count of unit (ms, minutes) of at least lo.
func msInto(field func(*Config) *time.Duration, lo int64, unit time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > math.MaxInt64/int64(unit) {
			return fmt.Errorf("invalid value %q (want an integer >= %d)", v, lo)
		}
		*field(c) = time.Duration(n) * unit
		return nil
	}
}

// consumerAssignors maps group.consumer.assignors entries, short or as
// Kafka's class names, to the coordinator's assignor names.
var consumerAssignors = map[string]string{
	"uniform": "uniform",
	"range":   "range",
	"org.apache.kafka.coordinator.group.assignor.UniformAssignor": "uniform",
	"org.apache.kafka.coordinator.group.assignor.RangeAssignor":   "range",
}

// logDefault sets a topic-config default through the topic catalogue's check
// and storage.LogConfig.Apply, so a broker default is held to the same rules
// (and refusals) as the topic config it defaults.
func logDefault(topicKey string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if d := topicConfigByName(topicKey); d != nil {
			if _, err := d.check(v); err != nil {
				return err
			}
		}
		lc, err := c.LogDefaults.Apply(map[string]string{topicKey: v})
		if err != nil {
			return err
		}
		c.LogDefaults = lc
		return nil
	}
}

func logScaled(topicKey string, unit time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid value %q", v)
		}
		ms := n * unit.Milliseconds()
		if n < 0 {
			ms = -1
		}
		return logDefault(topicKey)(c, strconv.FormatInt(ms, 10))
	}
}
