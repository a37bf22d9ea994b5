package broker

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/storage"
)

func TestValidateTopicConfigs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		configs map[string]string
		want    map[string]string // normalized, when valid
		errHas  string            // substring of the INVALID_CONFIG message
	}{
		{"empty", map[string]string{}, map[string]string{}, ""},
		{"long trimmed", map[string]string{"retention.ms": " 1000 "}, map[string]string{"retention.ms": "1000"}, ""},
		{"retention forever", map[string]string{"retention.ms": "-1"}, map[string]string{"retention.ms": "-1"}, ""},
		{"below minimum", map[string]string{"retention.ms": "-2"}, nil, "Invalid value -2 for configuration retention.ms: Value must be at least -1"},
		{"not a long", map[string]string{"retention.ms": "1h"}, nil, "retention.ms: Not a number of type LONG"},
		{"segment.bytes KIP-1030 minimum", map[string]string{"segment.bytes": "1024"}, nil, "segment.bytes: Value must be at least 1048576"},
		{"int overflow", map[string]string{"segment.bytes": "3000000000"}, nil, "Not a number of type INT"},
		{"unknown", map[string]string{"retention.ms": "1", "foo.bar": "1"}, nil, "Unknown topic config name: foo.bar"},
		{"removed in 4.0", map[string]string{"message.format.version": "3.0"}, nil, "Unknown topic config name: message.format.version"},
		{"compression producer", map[string]string{"compression.type": "producer"}, map[string]string{"compression.type": "producer"}, ""},
		{"compression gzip refused", map[string]string{"compression.type": "gzip"}, nil, "compression.type: kbroker stores record batches exactly as the producer sent them"},
		{"compression unknown codec", map[string]string{"compression.type": "brotli"}, nil, "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"},
		{"cleanup delete", map[string]string{"cleanup.policy": " delete "}, map[string]string{"cleanup.policy": "delete"}, ""},
		{"cleanup empty list", map[string]string{"cleanup.policy": ""}, map[string]string{"cleanup.policy": ""}, ""},
		{"cleanup compact", map[string]string{"cleanup.policy": "compact"}, map[string]string{"cleanup.policy": "compact"}, ""},
		{"cleanup both", map[string]string{"cleanup.policy": "delete, compact"}, map[string]string{"cleanup.policy": "delete,compact"}, ""},
		{"cleanup bad item", map[string]string{"cleanup.policy": "delete,"}, nil, "String must be one of: compact, delete"},
		{"remote storage refused", map[string]string{"remote.storage.enable": "true"}, nil, "Tiered Storage functionality is disabled in the broker"},
		{"bool any case", map[string]string{"remote.storage.enable": "FALSE", "preallocate": "True"},
			map[string]string{"remote.storage.enable": "false", "preallocate": "true"}, ""},
		{"bool invalid", map[string]string{"preallocate": "yes"}, nil, "Expected value to be either true or false"},
		{"double range", map[string]string{"min.cleanable.dirty.ratio": "1.5"}, nil, "Value must be no more than 1"},
		{"double ok", map[string]string{"min.cleanable.dirty.ratio": "0.25"}, map[string]string{"min.cleanable.dirty.ratio": "0.25"}, ""},
		{"compaction lags conflict", map[string]string{"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}, nil,
			"conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"},
		{"throttled list", map[string]string{"leader.replication.throttled.replicas": "0:1, 1:1", "follower.replication.throttled.replicas": "*"},
			map[string]string{"leader.replication.throttled.replicas": "0:1,1:1", "follower.replication.throttled.replicas": "*"}, ""},
		{"throttled bad", map[string]string{"leader.replication.throttled.replicas": "0-1"}, nil, "must be the literal '*'"},
		{"gzip level default", map[string]string{"compression.gzip.level": "-1"}, map[string]string{"compression.gzip.level": "-1"}, ""},
		{"gzip level zero", map[string]string{"compression.gzip.level": "0"}, nil, "Value must be between 1 and 9, or -1"},
		{"zstd negative level", map[string]string{"compression.zstd.level": "-131073"}, nil, "Value must be at least -131072"},
		{"timestamp type case", map[string]string{"message.timestamp.type": "logappendtime"}, nil, "String must be one of: CreateTime, LogAppendTime"},
		{"local retention sentinel", map[string]string{"local.retention.ms": "-2"}, map[string]string{"local.retention.ms": "-2"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := validateTopicConfigs(tc.configs)
			if tc.errHas != "" {
				code, msg := errorResult(err)
				if code != kerr.InvalidConfig.Code || msg == nil || !strings.Contains(*msg, tc.errHas) {
					t.Fatalf("got code %d message %v, want INVALID_CONFIG containing %q", code, ptrString(msg), tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !maps.Equal(got, tc.want) {
				t.Fatalf("normalized %v, want %v", got, tc.want)
			}
		})
	}
}

// The catalogue is sorted (topicConfigByName searches it), every default
// passes its own check, and its storage keys agree with storage's defaults.
func TestTopicConfigCatalogue(t *testing.T) {
	if !slices.IsSortedFunc(topicConfigDefs, func(a, b topicConfigDef) int { return strings.Compare(a.name, b.name) }) {
		t.Fatal("topicConfigDefs is not sorted by name")
	}
	lc := storage.DefaultLogConfig()
	for i, d := range topicConfigDefs {
		if i > 0 && topicConfigDefs[i-1].name == d.name {
			t.Errorf("%s listed twice", d.name)
		}
		if v, err := d.check(d.def); err != nil || v != d.def {
			t.Errorf("%s: default %q checks as %q, %v", d.name, d.def, v, err)
		}
		if v, ok := logConfigValue(lc, d.name); ok && v != d.def {
			t.Errorf("%s: storage default %s, Kafka default %s", d.name, v, d.def)
		}
		for _, sy := range d.synonyms {
			if configDefByName(sy.name) == nil {
				t.Errorf("%s: synonym %s is not in brokerConfigDefs", d.name, sy.name)
			}
		}
	}
	for _, d := range brokerConfigDefs {
		if _, ok := brokerConfigTypes[d.name]; !ok {
			t.Errorf("broker config %s has no type in brokerConfigTypes", d.name)
		}
	}
}

// The broker keys added for topic-config defaults are validated at start-up
// and feed LogDefaults where storage acts on them.
func TestBrokerTopicDefaults(t *testing.T) {
	for _, props := range []map[string]string{
		{"compression.type": "gzip"},
		{"log.roll.jitter.hours": "-1"},
		{"log.cleaner.min.cleanable.ratio": "2"},
		{"unclean.leader.election.enable": "maybe"},
	} {
		if _, err := ParseConfig(props); err == nil {
			t.Errorf("ParseConfig(%v) accepted", props)
		}
	}
	c, err := ParseConfig(map[string]string{"log.segment.delete.delay.ms": "5"})
	if err != nil || c.LogDefaults.FileDeleteDelayMs != 5 {
		t.Errorf("log.segment.delete.delay.ms=5: %d, %v", c.LogDefaults.FileDeleteDelayMs, err)
	}
	c, err = ParseConfig(map[string]string{"log.cleanup.policy": "compact", "log.cleaner.delete.retention.ms": "7",
		"log.cleaner.min.cleanable.ratio": "0.1", "log.cleaner.threads": "2", "log.cleaner.backoff.ms": "50", "log.cleaner.enable": "false"})
	if err != nil || !c.LogDefaults.CompactEnabled() || c.LogDefaults.DeleteRetentionMs != 7 || c.LogDefaults.MinCleanableDirtyRatio != 0.1 ||
		c.LogCleaner.Threads != 2 || c.LogCleaner.Backoff != 50*time.Millisecond || c.LogCleaner.Enable {
		t.Errorf("log cleaner settings: %+v %+v, %v", c.LogDefaults, c.LogCleaner, err)
	}
	for _, props := range []map[string]string{
		{"log.cleaner.threads": "-1"},
		{"log.segment.bytes": "65536"}, // Kafka 4: at least 1 MiB (KIP-1030)
	} {
		if _, err := ParseConfig(props); err == nil {
			t.Errorf("ParseConfig(%v) accepted: broker defaults follow the topic configs' rules", props)
		}
	}
}

type wantSynonym struct {
	name, value string
	source      kmsg.ConfigSource
}

func synonymsOf(rc kmsg.DescribeConfigsResponseResourceConfig) []wantSynonym {
	out := []wantSynonym{}
	for _, s := range rc.ConfigSynonyms {
		out = append(out, wantSynonym{s.Name, ptrString(s.Value), s.Source})
	}
	return out
}

// describeTopicConfig reports sources and synonyms as ConfigHelper does.
func TestDescribeTopicConfigSynonyms(t *testing.T) {
	const (
		static  = kmsg.ConfigSourceStaticBrokerConfig
		def     = kmsg.ConfigSourceDefaultConfig
		dynamic = kmsg.ConfigSourceDynamicTopicConfig
	)
	for _, tc := range []struct {
		name      string
		props     map[string]string
		overrides map[string]string
		key       string
		value     string
		source    kmsg.ConfigSource
		synonyms  []wantSynonym
	}{
		{"default", nil, nil, "segment.bytes", "1073741824", def,
			[]wantSynonym{{"log.segment.bytes", "1073741824", def}}},
		{"static", map[string]string{"log.segment.bytes": "2097152"}, nil, "segment.bytes", "2097152", static,
			[]wantSynonym{{"log.segment.bytes", "2097152", static}, {"log.segment.bytes", "1073741824", def}}},
		{"override", map[string]string{"log.segment.bytes": "2097152"}, map[string]string{"segment.bytes": "4194304"}, "segment.bytes", "4194304", dynamic,
			[]wantSynonym{{"segment.bytes", "4194304", dynamic}, {"log.segment.bytes", "2097152", static}, {"log.segment.bytes", "1073741824", def}}},
		// Kafka drops the synonyms before the primary key, log.retention.ms,
		// whose default is null: only log.retention.hours has one.
		{"retention default", nil, nil, "retention.ms", "604800000", def, []wantSynonym{}},
		{"retention hours", map[string]string{"log.retention.hours": "24"}, nil, "retention.ms", "86400000", def, []wantSynonym{}},
		{"retention ms", map[string]string{"log.retention.ms": "1000", "log.retention.hours": "24"}, nil, "retention.ms", "1000", static,
			[]wantSynonym{{"log.retention.ms", "1000", static}, {"log.retention.hours", "24", static}, {"log.retention.hours", "168", def}}},
		{"roll hours", map[string]string{"log.roll.hours": "1"}, map[string]string{"segment.ms": "5000"}, "segment.ms", "5000", dynamic,
			[]wantSynonym{{"segment.ms", "5000", dynamic}}},
		{"same-name synonym", map[string]string{"compression.type": "producer"}, nil, "compression.type", "producer", static,
			[]wantSynonym{{"compression.type", "producer", static}, {"compression.type", "producer", def}}},
		{"non-storage override", nil, map[string]string{"delete.retention.ms": "5"}, "delete.retention.ms", "5", dynamic,
			[]wantSynonym{{"delete.retention.ms", "5", dynamic}, {"log.cleaner.delete.retention.ms", "86400000", def}}},
		{"no broker key", nil, nil, "leader.replication.throttled.replicas", "", def, []wantSynonym{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testServer(t, tc.props)
			lc, err := s.cfg.LogDefaults.Apply(tc.overrides)
			if err != nil {
				t.Fatal(err)
			}
			rc := s.describeTopicConfig(topicConfigByName(tc.key), tc.overrides, lc, true, true)
			if got := ptrString(rc.Value); got != tc.value || rc.Source != tc.source {
				t.Errorf("%s = %s (%v), want %s (%v)", tc.key, got, rc.Source, tc.value, tc.source)
			}
			if got := synonymsOf(rc); !slices.Equal(got, tc.synonyms) {
				t.Errorf("synonyms %v, want %v", got, tc.synonyms)
			}
			if rc.ReadOnly || rc.ConfigType != topicConfigByName(tc.key).typ || rc.Documentation == nil {
				t.Errorf("read-only %v, type %v, doc %v", rc.ReadOnly, rc.ConfigType, rc.Documentation)
			}

			// CreateTopics' view (KafkaConfigSchema) has the same value; its
			// source follows any synonym set, without Kafka's drop.
			ec := s.effectiveTopicConfig(topicConfigByName(tc.key), tc.overrides, lc)
			if ptrString(ec.Value) != tc.value {
				t.Errorf("effective value %s, want %s", ptrString(ec.Value), tc.value)
			}
		})
	}

	s := testServer(t, map[string]string{"log.retention.hours": "24"})
	if ec := s.effectiveTopicConfig(topicConfigByName("retention.ms"), nil, s.cfg.LogDefaults); ec.Source != int8(kmsg.ConfigSourceStaticBrokerConfig) {
		t.Errorf("CreateTopics source of retention.ms with log.retention.hours set: %d, want STATIC_BROKER_CONFIG", ec.Source)
	}
}

func TestDescribeBrokerConfig(t *testing.T) {
	s := testServer(t, map[string]string{"num.partitions": " 3", "log.retention.ms": "1000"})
	describe := func(name string) kmsg.DescribeConfigsResponseResourceConfig {
		return s.describeBrokerConfig(configDefByName(name), true, false)
	}
	if rc := describe("num.partitions"); ptrString(rc.Value) != "3" || rc.Source != kmsg.ConfigSourceStaticBrokerConfig || !rc.ReadOnly || rc.ConfigType != kmsg.ConfigTypeInt {
		t.Errorf("num.partitions: %s %v read-only %v type %v", ptrString(rc.Value), rc.Source, rc.ReadOnly, rc.ConfigType)
	}
	if rc := describe("log.segment.bytes"); ptrString(rc.Value) != "1073741824" || rc.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("log.segment.bytes: %s %v", ptrString(rc.Value), rc.Source)
	}
	// log.retention.hours: the set log.retention.ms comes first and is dropped.
	if rc := describe("log.retention.hours"); !slices.Equal(synonymsOf(rc), []wantSynonym{{"log.retention.hours", "168", kmsg.ConfigSourceDefaultConfig}}) {
		t.Errorf("log.retention.hours synonyms %v", synonymsOf(rc))
	}
	if rc := describe("log.retention.minutes"); rc.Value != nil || rc.Source != kmsg.ConfigSourceDefaultConfig || len(rc.ConfigSynonyms) != 0 {
		t.Errorf("log.retention.minutes: %v %v %v", rc.Value, rc.Source, synonymsOf(rc))
	}
	if rc := describe("log.retention.ms"); ptrString(rc.Value) != "1000" || rc.Source != kmsg.ConfigSourceStaticBrokerConfig || len(rc.ConfigSynonyms) != 2 {
		t.Errorf("log.retention.ms: %s %v %v", ptrString(rc.Value), rc.Source, synonymsOf(rc))
	}
}

func TestApplyListOp(t *testing.T) {
	for _, tc := range []struct {
		op                     kmsg.IncrementalAlterConfigOp
		current, value, result string
	}{
		{kmsg.IncrementalAlterConfigOpAppend, "", "0:1", "0:1"},
		{kmsg.IncrementalAlterConfigOpAppend, "0:1", "0:1,1:1", "0:1,1:1"},
		{kmsg.IncrementalAlterConfigOpSubtract, "0:1,1:1", "0:1", "1:1"},
		{kmsg.IncrementalAlterConfigOpSubtract, "delete", "delete", ""},
		{kmsg.IncrementalAlterConfigOpSubtract, "0:1", "2:1", "0:1"},
	} {
		if got := applyListOp(tc.op, tc.current, tc.value); got != tc.result {
			t.Errorf("%v %q on %q = %q, want %q", tc.op, tc.value, tc.current, got, tc.result)
		}
	}
}

func TestValidateTopicName(t *testing.T) {
	for name, want := range map[string]string{
		"ok-name_1.x":            "",
		"":                       "Topic name is illegal, it can't be empty",
		".":                      `Topic name cannot be "." or ".."`,
		"..":                     `Topic name cannot be "." or ".."`,
		strings.Repeat("a", 249): "",
		strings.Repeat("a", 250): "it can't be longer than 249 characters",
		"a b":                    `Topic name "a b" is illegal, it contains a character other than ASCII alphanumerics`,
		"é":                      "is illegal",
	} {
		err := validateTopicName(name)
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", name, err)
			}
			continue
		}
		if !errors.Is(err, kerr.InvalidTopicException) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want INVALID_TOPIC_EXCEPTION %q", name, err, want)
		}
	}
}

func testServer(t *testing.T, props map[string]string) *Server {
	t.Helper()
	cfg, err := ParseConfig(props)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{cfg: cfg}
}

func ptrString(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
