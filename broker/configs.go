package broker

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
	"github.com/kbroker/kbroker/storage"
)

// This file is the catalogue of Kafka 4.x topic configs (LogConfig's ConfigDef
// and ServerTopicConfigSynonyms), their validation, and the two ways Kafka
// reports them: DescribeConfigs (ConfigHelper, with synonyms) and the
// CreateTopics v5+ response (KafkaConfigSchema.resolveEffectiveTopicConfig).
// It also holds the broker-config view for DescribeConfigs.

// topicConfigDef is one topic config as Kafka's LogConfig defines it.
type topicConfigDef struct {
	name string
	typ  kmsg.ConfigType
	def  string // Kafka's default, written as ConfigDef.convertToString writes it
	// synonyms are the broker keys that supply the default, highest priority
	// first (ServerTopicConfigSynonyms). Kafka lists no broker key for the
	// throttled-replica and remote.* configs.
	synonyms []configSynonym
	// check parses and validates a value and returns it normalized as Kafka
	// prints it back. Its error is the reason only; validateTopicConfigs adds
	// the "Invalid value ... for configuration ..." frame.
	check func(v string) (string, error)
	doc   string
}

// configSynonym is a broker key that defaults a topic config; unit converts
// hour and minute keys to the topic's milliseconds (ConfigSynonym.converter).
type configSynonym struct {
	name string
	unit time.Duration
}

func syn(name string) []configSynonym { return []configSynonym{{name: name}} }

// toTopicValue converts a broker value to the topic config's unit. A negative
// hours/minutes value means "forever", as KafkaConfig.logRetentionTimeMillis
// reads it.
func (s configSynonym) toTopicValue(v string) string {
	v = strings.TrimSpace(v)
	if s.unit == 0 {
		return v
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return v
	}
	if n < 0 {
		return "-1"
	}
	return strconv.FormatInt(n*s.unit.Milliseconds(), 10)
}

const maxLong = "9223372036854775807"

// topicConfigDefs is LogConfig.CONFIG of Kafka 4.0 (message.format.version
// and message.downconversion.enable were removed in 4.0; segment.bytes is at
// least 1 MiB and message.timestamp.after.max.ms defaults to one hour since
// KIP-1030), sorted by name.
//
// Every key is accepted with Kafka's validation. Values kbroker cannot honour
// are refused with INVALID_CONFIG instead of being stored and ignored:
// compression.type other than producer, and remote.storage.enable=true. Keys
// that have no effect on a single broker without tiered storage (throttled
// replicas, unclean leader election, preallocate, remote.log.*,
// local.retention.*) are accepted and reported, as Kafka accepts them when
// they do not apply.
var topicConfigDefs = []topicConfigDef{
	{"cleanup.policy", kmsg.ConfigTypeList, "delete", syn("log.cleanup.policy"), checkCleanupPolicy,
		"Retention policy for old segments: delete (by retention.ms / retention.bytes), compact (the log cleaner keeps the latest record per key), or both."},
	{"compression.gzip.level", kmsg.ConfigTypeInt, "-1", syn("compression.gzip.level"), checkGzipLevel,
		"Level used when compression.type is gzip; no effect in kbroker, which keeps the producer's compression."},
	{"compression.lz4.level", kmsg.ConfigTypeInt, "9", syn("compression.lz4.level"), checkInt(1, 17),
		"Level used when compression.type is lz4; no effect in kbroker, which keeps the producer's compression."},
	{"compression.type", kmsg.ConfigTypeString, "producer", syn("compression.type"), checkCompressionType,
		"Final compression of stored batches. kbroker stores batches exactly as the producer sent them, so only producer is supported."},
	{"compression.zstd.level", kmsg.ConfigTypeInt, "3", syn("compression.zstd.level"), checkInt(-131072, 22),
		"Level used when compression.type is zstd; no effect in kbroker, which keeps the producer's compression."},
	{"delete.retention.ms", kmsg.ConfigTypeLong, "86400000", syn("log.cleaner.delete.retention.ms"), checkLong(0, math.MaxInt64),
		"How long delete tombstones (and transaction markers) are kept in compacted topics after the clean that first reaches them."},
	{"file.delete.delay.ms", kmsg.ConfigTypeLong, "60000", syn("log.segment.delete.delay.ms"), checkLong(0, math.MaxInt64),
		"Time to wait before deleting a segment file from the file system."},
	{"flush.messages", kmsg.ConfigTypeLong, maxLong, syn("log.flush.interval.messages"), checkLong(1, math.MaxInt64),
		"Force an fsync after this many messages have been appended to a partition."},
	// Kafka also falls back to log.flush.scheduler.interval.ms; kbroker uses
	// that key only as the flusher's check interval, so it is not listed.
	{"flush.ms", kmsg.ConfigTypeLong, maxLong, syn("log.flush.interval.ms"), checkLong(0, math.MaxInt64),
		"Force an fsync when the oldest unflushed append is older than this."},
	{"follower.replication.throttled.replicas", kmsg.ConfigTypeList, "", nil, checkThrottledReplicas,
		"Replicas whose follower replication is throttled (partition:broker list or *); no effect on a single broker."},
	{"index.interval.bytes", kmsg.ConfigTypeInt, "4096", syn("log.index.interval.bytes"), checkInt(0, math.MaxInt32),
		"Bytes between two offset index entries."},
	{"leader.replication.throttled.replicas", kmsg.ConfigTypeList, "", nil, checkThrottledReplicas,
		"Replicas whose leader replication is throttled (partition:broker list or *); no effect on a single broker."},
	{"local.retention.bytes", kmsg.ConfigTypeLong, "-2", syn("log.local.retention.bytes"), checkLong(-2, math.MaxInt64),
		"Local retention by size for tiered storage (-2: use retention.bytes); no effect without tiered storage."},
	{"local.retention.ms", kmsg.ConfigTypeLong, "-2", syn("log.local.retention.ms"), checkLong(-2, math.MaxInt64),
		"Local retention by time for tiered storage (-2: use retention.ms); no effect without tiered storage."},
	{"max.compaction.lag.ms", kmsg.ConfigTypeLong, maxLong, syn("log.cleaner.max.compaction.lag.ms"), checkLong(1, math.MaxInt64),
		"Longest time a message stays ineligible for compaction: older dirty records make the log cleanable whatever its dirty ratio."},
	{"max.message.bytes", kmsg.ConfigTypeInt, "1048588", syn("message.max.bytes"), checkInt(0, math.MaxInt32),
		"Largest record batch the topic accepts, after compression."},
	{"message.timestamp.after.max.ms", kmsg.ConfigTypeLong, "3600000", syn("log.message.timestamp.after.max.ms"), checkLong(0, math.MaxInt64),
		"How far a CreateTime timestamp may be ahead of the broker's clock."},
	{"message.timestamp.before.max.ms", kmsg.ConfigTypeLong, maxLong, syn("log.message.timestamp.before.max.ms"), checkLong(0, math.MaxInt64),
		"How far a CreateTime timestamp may be behind the broker's clock."},
	{"message.timestamp.type", kmsg.ConfigTypeString, "CreateTime", syn("log.message.timestamp.type"), checkOneOf("CreateTime", "LogAppendTime"),
		"Whether record timestamps are the producer's (CreateTime) or the broker's at append (LogAppendTime)."},
	{"min.cleanable.dirty.ratio", kmsg.ConfigTypeDouble, "0.5", syn("log.cleaner.min.cleanable.ratio"), checkDouble(0, 1),
		"Dirty ratio (uncleaned bytes / total bytes) above which the log cleaner compacts a log."},
	{"min.compaction.lag.ms", kmsg.ConfigTypeLong, "0", syn("log.cleaner.min.compaction.lag.ms"), checkLong(0, math.MaxInt64),
		"Shortest time a message stays uncompacted: segments with younger records are not cleaned."},
	{"min.insync.replicas", kmsg.ConfigTypeInt, "1", syn("min.insync.replicas"), checkInt(1, math.MaxInt32),
		"Fewest in-sync replicas for an acks=all produce to succeed."},
	{"preallocate", kmsg.ConfigTypeBoolean, "false", syn("log.preallocate"), checkBool,
		"Preallocate segment files on creation; no effect in kbroker."},
	{"remote.log.copy.disable", kmsg.ConfigTypeBoolean, "false", nil, checkBool,
		"Stop copying segments to tiered storage; no effect without tiered storage."},
	{"remote.log.delete.on.disable", kmsg.ConfigTypeBoolean, "false", nil, checkBool,
		"Delete tiered data when tiered storage is disabled; no effect without tiered storage."},
	{"remote.storage.enable", kmsg.ConfigTypeBoolean, "false", nil, checkRemoteStorage,
		"Tiered storage for the topic. Not available in kbroker: only false is accepted."},
	{"retention.bytes", kmsg.ConfigTypeLong, "-1", syn("log.retention.bytes"), checkLong(math.MinInt64, math.MaxInt64),
		"Size a partition may grow to before old segments are deleted; -1 is unlimited."},
	{"retention.ms", kmsg.ConfigTypeLong, "604800000", []configSynonym{
		{name: "log.retention.ms"}, {name: "log.retention.minutes", unit: time.Minute}, {name: "log.retention.hours", unit: time.Hour},
	}, checkLong(-1, math.MaxInt64),
		"Age after which old segments are deleted; -1 keeps them forever."},
	{"segment.bytes", kmsg.ConfigTypeInt, "1073741824", syn("log.segment.bytes"), checkInt(1024*1024, math.MaxInt32),
		"Size at which the active segment is rolled."},
	{"segment.index.bytes", kmsg.ConfigTypeInt, "10485760", syn("log.index.size.max.bytes"), checkInt(4, math.MaxInt32),
		"Maximum size of a segment's offset and time index."},
	{"segment.jitter.ms", kmsg.ConfigTypeLong, "0", []configSynonym{
		{name: "log.roll.jitter.ms"}, {name: "log.roll.jitter.hours", unit: time.Hour},
	}, checkLong(0, math.MaxInt64),
		"Random jitter subtracted from segment.ms; kbroker rolls without jitter."},
	{"segment.ms", kmsg.ConfigTypeLong, "604800000", []configSynonym{
		{name: "log.roll.ms"}, {name: "log.roll.hours", unit: time.Hour},
	}, checkLong(1, math.MaxInt64),
		"Age at which the active segment is rolled even if not full."},
	{"unclean.leader.election.enable", kmsg.ConfigTypeBoolean, "false", syn("unclean.leader.election.enable"), checkBool,
		"Allow an out-of-sync replica to become leader; no effect on a single broker."},
}

// topicConfigByName looks a topic config up; nil when Kafka has no such key.
func topicConfigByName(name string) *topicConfigDef {
	i, ok := slices.BinarySearchFunc(topicConfigDefs, name, func(d topicConfigDef, n string) int {
		return strings.Compare(d.name, n)
	})
	if !ok {
		return nil
	}
	return &topicConfigDefs[i]
}

// validateTopicConfigs validates a topic's complete override set as
// LogConfig.validate does for ControllerConfigurationValidator: every name
// must be a topic config ("Unknown topic config name"), every value must
// parse and pass its validator, and min.compaction.lag.ms may not exceed
// max.compaction.lag.ms. It returns the overrides normalized as Kafka prints
// them (trimmed, lists without spaces). Errors are INVALID_CONFIG.
func validateTopicConfigs(configs map[string]string) (map[string]string, error) {
	names := make([]string, 0, len(configs))
	for name := range configs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if topicConfigByName(name) == nil {
			return nil, newAPIError(kerr.InvalidConfig, "Unknown topic config name: %s", name)
		}
	}
	out := make(map[string]string, len(configs))
	for _, name := range names {
		v, err := topicConfigByName(name).check(strings.TrimSpace(configs[name]))
		if err != nil {
			return nil, newAPIError(kerr.InvalidConfig, "Invalid value %s for configuration %s: %v", configs[name], name, err)
		}
		out[name] = v
	}
	// LogConfig.validateValues, over Kafka's defaults for keys not overridden.
	lag := func(name string) int64 {
		v, ok := out[name]
		if !ok {
			v = topicConfigByName(name).def
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	if lo, hi := lag("min.compaction.lag.ms"), lag("max.compaction.lag.ms"); lo > hi {
		return nil, newAPIError(kerr.InvalidConfig, "conflict topic config setting min.compaction.lag.ms (%d) > max.compaction.lag.ms (%d)", lo, hi)
	}
	return out, nil
}

// Validators, with the reasons Kafka's ConfigDef validators give.

func checkInt(lo, hi int64) func(string) (string, error) {
	return checkNumber(lo, hi, 32, "INT")
}

func checkLong(lo, hi int64) func(string) (string, error) {
	return checkNumber(lo, hi, 64, "LONG")
}

// checkNumber parses an INT or LONG and applies ConfigDef.Range: a bound at
// the type's own limit means "no bound".
func checkNumber(lo, hi int64, bits int, typ string) func(string) (string, error) {
	min, max := int64(math.MinInt64), int64(math.MaxInt64)
	if bits == 32 {
		min, max = math.MinInt32, math.MaxInt32
	}
	return func(v string) (string, error) {
		n, err := strconv.ParseInt(v, 10, bits)
		switch {
		case err != nil:
			return "", fmt.Errorf("Not a number of type %s", typ)
		case lo > min && n < lo:
			return "", fmt.Errorf("Value must be at least %d", lo)
		case hi < max && n > hi:
			return "", fmt.Errorf("Value must be no more than %d", hi)
		}
		return strconv.FormatInt(n, 10), nil
	}
}

func checkDouble(lo, hi float64) func(string) (string, error) {
	return func(v string) (string, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) {
			return "", errors.New("Not a number of type DOUBLE")
		}
		if f < lo {
			return "", fmt.Errorf("Value must be at least %v", lo)
		}
		if f > hi {
			return "", fmt.Errorf("Value must be no more than %v", hi)
		}
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
}

// checkBool accepts true/false in any case, as ConfigDef.parseType does.
func checkBool(v string) (string, error) {
	switch strings.ToLower(v) {
	case "true":
		return "true", nil
	case "false":
		return "false", nil
	}
	return "", errors.New("Expected value to be either true or false")
}

func checkOneOf(valid ...string) func(string) (string, error) {
	return func(v string) (string, error) {
		if !slices.Contains(valid, v) {
			return "", fmt.Errorf("String must be one of: %s", strings.Join(valid, ", "))
		}
		return v, nil
	}
}

// splitList parses a LIST value as ConfigDef.parseType does: comma separated,
// whitespace around items dropped, "" is the empty list.
func splitList(v string) []string {
	if v == "" {
		return nil
	}
	items := strings.Split(v, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	return items
}

func checkCleanupPolicy(v string) (string, error) {
	items := splitList(v)
	for _, p := range items {
		if p != "delete" && p != "compact" {
			return "", errors.New("String must be one of: compact, delete")
		}
	}
	return strings.Join(items, ","), nil
}

func checkCompressionType(v string) (string, error) {
	if _, err := checkOneOf("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")(v); err != nil {
		return "", err
	}
	if v != "producer" {
		return "", errors.New("kbroker stores record batches exactly as the producer sent them and never recompresses, so only producer is supported")
	}
	return v, nil
}

// checkGzipLevel is GzipCompression.LevelValidator: 1-9, or -1 for zlib's
// default.
func checkGzipLevel(v string) (string, error) {
	n, err := checkInt(math.MinInt32, math.MaxInt32)(v)
	if err != nil {
		return "", err
	}
	if l, _ := strconv.Atoi(n); l != -1 && (l < 1 || l > 9) {
		return "", errors.New("Value must be between 1 and 9, or -1")
	}
	return n, nil
}

func checkRemoteStorage(v string) (string, error) {
	b, err := checkBool(v)
	if err == nil && b == "true" {
		// Kafka's answer when remote.log.storage.system.enable is false.
		return "", errors.New("Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.")
	}
	return b, err
}

var throttledReplica = regexp.MustCompile(`^[0-9]+:[0-9]+$`)

// checkThrottledReplicas is ThrottledReplicaListValidator: "*" or a list of
// partition:broker pairs.
func checkThrottledReplicas(v string) (string, error) {
	items := splitList(v)
	if len(items) == 1 && items[0] == "*" {
		return "*", nil
	}
	for _, it := range items {
		if !throttledReplica.MatchString(it) {
			return "", errors.New("must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")
		}
	}
	return strings.Join(items, ","), nil
}

// topicDefault applies a broker key that defaults a topic config storage does
// not act on (compression.type, log.cleaner.*, ...): it is validated with the
// topic config's own rules, so server.properties cannot ask for what kbroker
// cannot do, and DescribeConfigs reads it back from Props.
func topicDefault(topicKey string, unit time.Duration) func(*Config, string) error {
	return func(_ *Config, v string) error {
		d := topicConfigByName(topicKey)
		_, err := d.check(configSynonym{unit: unit}.toTopicValue(v))
		return err
	}
}

// logConfigValue renders a key storage acts on from the LogConfig in effect,
// so what is reported is what storage does.
func logConfigValue(lc storage.LogConfig, name string) (string, bool) {
	v, ok := lc.Values()[name]
	return v, ok
}

// topicConfigValue is the value in effect for a topic: storage's for the keys
// it acts on, else the override, else the first broker synonym set in
// server.properties (converted to the topic's unit), else Kafka's default.
func (s *Server) topicConfigValue(d *topicConfigDef, overrides map[string]string, lc storage.LogConfig) string {
	if v, ok := logConfigValue(lc, d.name); ok {
		return v
	}
	if v, ok := overrides[d.name]; ok {
		return v
	}
	for _, sy := range d.synonyms {
		if v, ok := s.cfg.Props[sy.name]; ok {
			v = sy.toTopicValue(v)
			if n, err := d.check(v); err == nil {
				v = n // printed as Kafka prints it: "TRUE" is "true"
			}
			return v
		}
	}
	return d.def
}

type configSynonymEntry = kmsg.DescribeConfigsResponseResourceConfigConfigSynonym

// configSynonyms mirrors ConfigHelper.configSynonyms on a broker without
// dynamic configs: the keys of names set in server.properties
// (STATIC_BROKER_CONFIG), then those with a default (DEFAULT_CONFIG), each in
// names order, dropping every entry before the first one for name. As in
// Kafka, that drop means e.g. a topic's retention.ms lists no synonym when
// only log.retention.hours is set: the value is right, the source says
// DEFAULT_CONFIG.
func (s *Server) configSynonyms(name string, names []string) []configSynonymEntry {
	var out []configSynonymEntry
	add := func(n, v string, src kmsg.ConfigSource) {
		e := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		e.Name, e.Value, e.Source = n, kmsg.StringPtr(strings.TrimSpace(v)), src
		out = append(out, e)
	}
	for _, n := range names {
		if v, ok := s.cfg.Props[n]; ok {
			add(n, v, kmsg.ConfigSourceStaticBrokerConfig)
		}
	}
	for _, n := range names {
		if d := configDefByName(n); d != nil && d.def != "" {
			add(n, d.def, kmsg.ConfigSourceDefaultConfig)
		}
	}
	for len(out) > 0 && out[0].Name != name {
		out = out[1:]
	}
	return out
}

// brokerSynonymNames is DynamicBrokerConfig.brokerConfigSynonyms: the keys
// that set the same value in different units (log.roll.ms, log.roll.hours),
// else the key alone.
func brokerSynonymNames(name string) []string {
	for _, d := range topicConfigDefs {
		if len(d.synonyms) > 1 && slices.ContainsFunc(d.synonyms, func(s configSynonym) bool { return s.name == name }) {
			names := make([]string, len(d.synonyms))
			for i, s := range d.synonyms {
				names[i] = s.name
			}
			return names
		}
	}
	return []string{name}
}

// describeTopicConfig is ConfigHelper.createTopicConfigEntry: the override
// (DYNAMIC_TOPIC_CONFIG) heads the synonyms, then the broker keys; the source
// is the first synonym's.
func (s *Server) describeTopicConfig(d *topicConfigDef, overrides map[string]string, lc storage.LogConfig, synonyms, docs bool) kmsg.DescribeConfigsResponseResourceConfig {
	rc := kmsg.NewDescribeConfigsResponseResourceConfig()
	rc.Name = d.name
	rc.Value = kmsg.StringPtr(s.topicConfigValue(d, overrides, lc))
	rc.ConfigType = d.typ

	var all []configSynonymEntry
	if v, ok := overrides[d.name]; ok {
		e := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		e.Name, e.Value, e.Source = d.name, kmsg.StringPtr(v), kmsg.ConfigSourceDynamicTopicConfig
		all = append(all, e)
	}
	if len(d.synonyms) > 0 {
		primary := d.synonyms[0].name
		all = append(all, s.configSynonyms(primary, brokerSynonymNames(primary))...)
	}
	rc.Source = kmsg.ConfigSourceDefaultConfig
	if len(all) > 0 {
		rc.Source = all[0].Source
	}
	if synonyms {
		rc.ConfigSynonyms = all
	}
	if docs {
		rc.Documentation = kmsg.StringPtr(d.doc)
	}
	return rc
}

// effectiveTopicConfig is KafkaConfigSchema.resolveEffectiveTopicConfig, which
// fills the CreateTopics v5+ response (KIP-525): the override, else the first
// broker synonym set in server.properties, else the default; no synonyms.
func (s *Server) effectiveTopicConfig(d *topicConfigDef, overrides map[string]string, lc storage.LogConfig) kmsg.CreateTopicsResponseTopicConfig {
	c := kmsg.NewCreateTopicsResponseTopicConfig()
	c.Name = d.name
	c.Value = kmsg.StringPtr(s.topicConfigValue(d, overrides, lc))
	c.Source = int8(kmsg.ConfigSourceDefaultConfig)
	if _, ok := overrides[d.name]; ok {
		c.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
	} else if slices.ContainsFunc(d.synonyms, func(sy configSynonym) bool { _, ok := s.cfg.Props[sy.name]; return ok }) {
		c.Source = int8(kmsg.ConfigSourceStaticBrokerConfig)
	}
	return c
}

// brokerConfigTypes gives DescribeConfigs v3+ the type of every broker key in
// brokerConfigDefs, as KafkaConfig defines it (file.delete.delay.ms is a
// kbroker key; Kafka's is log.segment.delete.delay.ms).
var brokerConfigTypes = map[string]kmsg.ConfigType{
	"node.id":                                   kmsg.ConfigTypeInt,
	"listeners":                                 kmsg.ConfigTypeString,
	"advertised.listeners":                      kmsg.ConfigTypeString,
	"broker.id":                                 kmsg.ConfigTypeInt,
	"process.roles":                             kmsg.ConfigTypeList,
	"listener.security.protocol.map":            kmsg.ConfigTypeString,
	"controller.listener.names":                 kmsg.ConfigTypeString,
	"inter.broker.listener.name":                kmsg.ConfigTypeString,
	"security.inter.broker.protocol":            kmsg.ConfigTypeString,
	"controller.quorum.voters":                  kmsg.ConfigTypeList,
	"controller.quorum.bootstrap.servers":       kmsg.ConfigTypeList,
	"controller.quorum.election.timeout.ms":     kmsg.ConfigTypeInt,
	"broker.rack":                               kmsg.ConfigTypeString,
	"replica.selector.class":                    kmsg.ConfigTypeClass,
	"replica.lag.time.max.ms":                   kmsg.ConfigTypeLong,
	"replica.fetch.wait.max.ms":                 kmsg.ConfigTypeInt,
	"replica.fetch.min.bytes":                   kmsg.ConfigTypeInt,
	"replica.fetch.max.bytes":                   kmsg.ConfigTypeInt,
	"replica.fetch.response.max.bytes":          kmsg.ConfigTypeInt,
	"replica.fetch.backoff.ms":                  kmsg.ConfigTypeInt,
	"broker.session.timeout.ms":                 kmsg.ConfigTypeInt,
	"broker.heartbeat.interval.ms":              kmsg.ConfigTypeInt,
	"controlled.shutdown.enable":                kmsg.ConfigTypeBoolean,
	"log.dirs":                                  kmsg.ConfigTypeList,
	"num.partitions":                            kmsg.ConfigTypeInt,
	"default.replication.factor":                kmsg.ConfigTypeInt,
	"auto.create.topics.enable":                 kmsg.ConfigTypeBoolean,
	"delete.topic.enable":                       kmsg.ConfigTypeBoolean,
	"socket.request.max.bytes":                  kmsg.ConfigTypeInt,
	"fetch.max.bytes":                           kmsg.ConfigTypeInt,
	"connection.failed.authentication.delay.ms": kmsg.ConfigTypeInt,
	"log.retention.check.interval.ms":           kmsg.ConfigTypeLong,
	"log.flush.scheduler.interval.ms":           kmsg.ConfigTypeLong,
	"log.cleaner.enable":                        kmsg.ConfigTypeBoolean,
	"log.cleaner.threads":                       kmsg.ConfigTypeInt,
	"log.cleaner.dedupe.buffer.size":            kmsg.ConfigTypeLong,
	"log.cleaner.io.buffer.size":                kmsg.ConfigTypeInt,
	"log.cleaner.backoff.ms":                    kmsg.ConfigTypeLong,
	"producer.id.expiration.ms":                 kmsg.ConfigTypeInt,
	"transaction.max.timeout.ms":                kmsg.ConfigTypeInt,
	"transactional.id.expiration.ms":            kmsg.ConfigTypeInt,
	"transaction.abort.timed.out.transaction.cleanup.interval.ms": kmsg.ConfigTypeInt,
	"transaction.remove.expired.transaction.cleanup.interval.ms":  kmsg.ConfigTypeInt,
	"transaction.state.log.replication.factor":                    kmsg.ConfigTypeShort,
	"transaction.state.log.min.isr":                               kmsg.ConfigTypeInt,
	"transaction.state.log.num.partitions":                        kmsg.ConfigTypeInt,
	"producer.id.expiration.check.interval.ms":                    kmsg.ConfigTypeInt,
	"http.listener":                            kmsg.ConfigTypeString,
	"kbroker.metrics.per.partition.enable":     kmsg.ConfigTypeBoolean,
	"authorizer.class.name":                    kmsg.ConfigTypeString,
	"super.users":                              kmsg.ConfigTypeList,
	"allow.everyone.if.no.acl.found":           kmsg.ConfigTypeBoolean,
	"group.initial.rebalance.delay.ms":         kmsg.ConfigTypeInt,
	"offsets.topic.num.partitions":             kmsg.ConfigTypeInt,
	"offsets.topic.replication.factor":         kmsg.ConfigTypeShort,
	"group.min.session.timeout.ms":             kmsg.ConfigTypeInt,
	"group.max.session.timeout.ms":             kmsg.ConfigTypeInt,
	"group.max.size":                           kmsg.ConfigTypeInt,
	"offsets.retention.minutes":                kmsg.ConfigTypeInt,
	"offsets.retention.check.interval.ms":      kmsg.ConfigTypeLong,
	"offset.metadata.max.bytes":                kmsg.ConfigTypeInt,
	"group.coordinator.rebalance.protocols":    kmsg.ConfigTypeList,
	"group.consumer.heartbeat.interval.ms":     kmsg.ConfigTypeInt,
	"group.consumer.min.heartbeat.interval.ms": kmsg.ConfigTypeInt,
	"group.consumer.max.heartbeat.interval.ms": kmsg.ConfigTypeInt,
	"group.consumer.session.timeout.ms":        kmsg.ConfigTypeInt,
	"group.consumer.min.session.timeout.ms":    kmsg.ConfigTypeInt,
	"group.consumer.max.session.timeout.ms":    kmsg.ConfigTypeInt,
	"group.consumer.max.size":                  kmsg.ConfigTypeInt,
	"group.consumer.assignors":                 kmsg.ConfigTypeList,
	"log.segment.bytes":                        kmsg.ConfigTypeInt,
	"log.roll.hours":                           kmsg.ConfigTypeInt,
	"log.roll.ms":                              kmsg.ConfigTypeLong,
	"log.roll.jitter.hours":                    kmsg.ConfigTypeInt,
	"log.roll.jitter.ms":                       kmsg.ConfigTypeLong,
	"log.index.size.max.bytes":                 kmsg.ConfigTypeInt,
	"log.index.interval.bytes":                 kmsg.ConfigTypeInt,
	"log.retention.hours":                      kmsg.ConfigTypeInt,
	"log.retention.minutes":                    kmsg.ConfigTypeInt,
	"log.retention.ms":                         kmsg.ConfigTypeLong,
	"log.retention.bytes":                      kmsg.ConfigTypeLong,
	"log.cleanup.policy":                       kmsg.ConfigTypeList,
	"message.max.bytes":                        kmsg.ConfigTypeInt,
	"log.message.timestamp.type":               kmsg.ConfigTypeString,
	"log.message.timestamp.before.max.ms":      kmsg.ConfigTypeLong,
	"log.message.timestamp.after.max.ms":       kmsg.ConfigTypeLong,
	"log.flush.interval.messages":              kmsg.ConfigTypeLong,
	"log.flush.interval.ms":                    kmsg.ConfigTypeLong,
	"file.delete.delay.ms":                     kmsg.ConfigTypeLong,
	"log.segment.delete.delay.ms":              kmsg.ConfigTypeLong,
	"min.insync.replicas":                      kmsg.ConfigTypeInt,
	"log.cleaner.delete.retention.ms":          kmsg.ConfigTypeLong,
	"log.cleaner.min.compaction.lag.ms":        kmsg.ConfigTypeLong,
	"log.cleaner.max.compaction.lag.ms":        kmsg.ConfigTypeLong,
	"log.cleaner.min.cleanable.ratio":          kmsg.ConfigTypeDouble,
	"unclean.leader.election.enable":           kmsg.ConfigTypeBoolean,
	"compression.type":                         kmsg.ConfigTypeString,
	"compression.gzip.level":                   kmsg.ConfigTypeInt,
	"compression.lz4.level":                    kmsg.ConfigTypeInt,
	"compression.zstd.level":                   kmsg.ConfigTypeInt,
	"log.preallocate":                          kmsg.ConfigTypeBoolean,
	"log.local.retention.ms":                   kmsg.ConfigTypeLong,
	"log.local.retention.bytes":                kmsg.ConfigTypeLong,
}

// describeBrokerConfig is ConfigHelper.createBrokerConfigEntry for this
// node: the value set in server.properties (STATIC_BROKER_CONFIG) or the
// default (DEFAULT_CONFIG; null when Kafka has none, like log.retention.ms).
// Every key is read-only: kbroker has no dynamic broker configs yet.
func (s *Server) describeBrokerConfig(d *configDef, synonyms, docs bool) kmsg.DescribeConfigsResponseResourceConfig {
	rc := kmsg.NewDescribeConfigsResponseResourceConfig()
	rc.Name = d.name
	if v, ok := s.cfg.Props[d.name]; ok {
		rc.Value = kmsg.StringPtr(strings.TrimSpace(v))
	} else if d.def != "" {
		rc.Value = kmsg.StringPtr(d.def)
	}
	rc.ReadOnly = true
	rc.ConfigType = brokerConfigTypes[d.name]
	if rc.ConfigType == kmsg.ConfigTypePassword {
		rc.IsSensitive, rc.Value = true, nil
	}
	all := s.configSynonyms(d.name, brokerSynonymNames(d.name))
	rc.Source = kmsg.ConfigSourceDefaultConfig
	if len(all) > 0 {
		rc.Source = all[0].Source
	}
	if synonyms {
		rc.ConfigSynonyms = all
	}
	if docs {
		rc.Documentation = kmsg.StringPtr(brokerConfigDoc(d.name))
	}
	return rc
}

// brokerConfigDoc documents the broker keys that default a topic config by
// that config's text; the others have none yet.
func brokerConfigDoc(name string) string {
	for _, d := range topicConfigDefs {
		if slices.ContainsFunc(d.synonyms, func(s configSynonym) bool { return s.name == name }) {
			return "Default for the topic config " + d.name + ". " + d.doc
		}
	}
	return ""
}

// checkBrokerResourceName mirrors ConfigAdminManager.validateResourceNameIsCurrentNodeId.
func (s *Server) checkBrokerResourceName(name string) error {
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil {
		return newAPIError(kerr.InvalidRequest, "Node id must be an integer, but it is: %s", name)
	}
	if int32(id) != s.cfg.NodeID {
		return newAPIError(kerr.InvalidRequest, "Unexpected broker id, expected %d, but received %s", s.cfg.NodeID, name)
	}
	return nil
}

// refuseBrokerConfigChange is DynamicBrokerConfig.validate for a broker that
// has no dynamically updatable config yet: setting any key is refused as
// Kafka refuses its static keys (INVALID_REQUEST, KAFKA-13609).
func refuseBrokerConfigChange(names []string) error {
	if len(names) == 0 {
		return nil
	}
	return newAPIError(kerr.InvalidRequest, "Cannot update these configs dynamically: Set(%s)", strings.Join(names, ", "))
}

// checkTopicResourceName is ControllerConfigurationValidator.validateTopicName.
func checkTopicResourceName(name string) error {
	if name == "" {
		return newAPIError(kerr.InvalidRequest, "Default topic resources are not allowed.")
	}
	return validateTopicName(name)
}

// apiError is a per-resource failure with Kafka's code and message (Kafka's
// ApiError). It unwraps to the *kerr.Error, so protocol.KafkaError maps it.
type apiError struct {
	kerr *kerr.Error
	msg  string
}

func newAPIError(k *kerr.Error, format string, args ...any) error {
	return &apiError{kerr: k, msg: fmt.Sprintf(format, args...)}
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.kerr }

// errorResult is the code and message to send for err: an apiError's own
// message, a storage error's text, none for a bare Kafka error.
func errorResult(err error) (int16, *string) {
	if err == nil {
		return 0, nil
	}
	code := protocol.ErrorCode(err)
	var ae *apiError
	if errors.As(err, &ae) {
		return code, kmsg.StringPtr(ae.msg)
	}
	if _, bare := err.(*kerr.Error); bare {
		return code, nil
	}
	return code, kmsg.StringPtr(err.Error())
}

// configResource identifies a resource in an alter request; countResources
// finds the ones named twice, which ConfigAdminManager refuses ("Each
// resource must appear at most once.").
type configResource struct {
	typ  kmsg.ConfigResourceType
	name string
}

func countResources[T any](rs []T, key func(*T) configResource) map[configResource]int {
	n := make(map[configResource]int, len(rs))
	for i := range rs {
		n[key(&rs[i])]++
	}
	return n
}
