package integration

import (
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Topic and broker configs through kadm (CreateTopics, DescribeConfigs,
// AlterConfigs, IncrementalAlterConfigs), and raw kmsg requests where kadm
// hides a field or would not send what is tested.

func TestConfigsCreateTopics(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{"num.partitions": "3", "log.segment.bytes": "2097152"})
	cl := b.client(t)
	adm := kadm.NewClient(cl)

	rs, err := adm.CreateTopics(ctx(t), 2, 1, map[string]*string{
		"retention.ms":     kadm.StringPtr("3600000"),
		"cleanup.policy":   kadm.StringPtr(" delete "),
		"compression.type": kadm.StringPtr("producer"),
	}, "cfg-create")
	if err != nil {
		t.Fatal(err)
	}
	r := rs["cfg-create"]
	if r.Err != nil || r.NumPartitions != 2 || r.ReplicationFactor != 1 || r.ID == (kadm.TopicID{}) {
		t.Fatalf("create: err %v (%s), %d partitions, rf %d, id %v", r.Err, r.ErrMessage, r.NumPartitions, r.ReplicationFactor, r.ID)
	}
	// KIP-525: every topic config with its value and source.
	for key, want := range map[string]struct {
		value  string
		source kmsg.ConfigSource
	}{
		"retention.ms":      {"3600000", kmsg.ConfigSourceDynamicTopicConfig},
		"cleanup.policy":    {"delete", kmsg.ConfigSourceDynamicTopicConfig},
		"segment.bytes":     {"2097152", kmsg.ConfigSourceStaticBrokerConfig},
		"max.message.bytes": {"1048588", kmsg.ConfigSourceDefaultConfig},
	} {
		c, ok := r.Configs[key]
		if !ok || c.MaybeValue() != want.value || c.Source != want.source {
			t.Errorf("create response %s = %q (%v), want %q (%v)", key, c.MaybeValue(), c.Source, want.value, want.source)
		}
	}
	if len(r.Configs) < 30 {
		t.Errorf("create response lists %d configs, want every topic config", len(r.Configs))
	}
	if md := metadataTopics(t, cl)["cfg-create"]; md.ErrorCode != 0 || len(md.Partitions) != 2 {
		t.Fatalf("metadata: error %d, %d partitions", md.ErrorCode, len(md.Partitions))
	}

	createTopic(t, adm, "cfg.dot", 1, nil) // for the '.'/'_' collision below

	// -1/-1 take num.partitions and default.replication.factor (KIP-464).
	rs, err = adm.CreateTopics(ctx(t), -1, -1, nil, "cfg-defaults")
	if err != nil || rs["cfg-defaults"].Err != nil || rs["cfg-defaults"].NumPartitions != 3 || rs["cfg-defaults"].ReplicationFactor != 1 {
		t.Fatalf("create with defaults: %v %+v", err, rs["cfg-defaults"])
	}

	for _, tc := range []struct {
		topic      string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       *kerr.Error
		msg        string
	}{
		{"cfg-create", 1, 1, nil, kerr.TopicAlreadyExists, "Topic 'cfg-create' already exists."},
		{"cfg-rf", 1, 3, nil, kerr.InvalidReplicationFactor,
			"Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 1 broker(s) are registered."},
		{"cfg-rf0", 1, 0, nil, kerr.InvalidReplicationFactor, "Replication factor must be larger than 0, or -1 to use the default value."},
		{"cfg-p0", 0, 1, nil, kerr.InvalidPartitions, "Number of partitions was set to an invalid non-positive value."},
		{"bad/name", 1, 1, nil, kerr.InvalidTopicException, "contains a character other than ASCII alphanumerics"},
		{"cfg_dot", 1, 1, nil, kerr.InvalidTopicException, "Topic 'cfg_dot' collides with existing topic: cfg.dot"},
		{"cfg-unknown", 1, 1, map[string]*string{"no.such.config": kadm.StringPtr("1")}, kerr.InvalidConfig, "Unknown topic config name: no.such.config"},
		{"cfg-badvalue", 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("soon")}, kerr.InvalidConfig, "Invalid value soon for configuration retention.ms"},
		{"cfg-gzip", 1, 1, map[string]*string{"compression.type": kadm.StringPtr("gzip")}, kerr.InvalidConfig, "only producer is supported"},
		{"cfg-remote", 1, 1, map[string]*string{"remote.storage.enable": kadm.StringPtr("true")}, kerr.InvalidConfig, "Tiered Storage functionality is disabled"},
		{"cfg-null", 1, 1, map[string]*string{"retention.ms": nil}, kerr.InvalidConfig, "Null value not supported for topic configs: retention.ms"},
	} {
		rs, err := adm.CreateTopics(ctx(t), tc.partitions, tc.rf, tc.configs, tc.topic)
		if err != nil {
			t.Fatal(err)
		}
		r := rs[tc.topic]
		if !errors.Is(r.Err, tc.want) || !strings.Contains(r.ErrMessage, tc.msg) {
			t.Errorf("%s: %v %q, want %v %q", tc.topic, r.Err, r.ErrMessage, tc.want, tc.msg)
		}
	}
	// No refused topic exists.
	topics := metadataTopics(t, cl)
	for _, name := range []string{"cfg-rf", "cfg_dot", "cfg-gzip"} {
		if _, ok := topics[name]; ok {
			t.Errorf("refused topic %s exists", name)
		}
	}

	// A name twice in one request: one INVALID_REQUEST, nothing created.
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range []string{"cfg-dup", "cfg-single", "cfg-dup"} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string][]int16{}
	for _, rt := range resp.Topics {
		codes[rt.Topic] = append(codes[rt.Topic], rt.ErrorCode)
	}
	if len(codes["cfg-dup"]) != 1 || codes["cfg-dup"][0] != kerr.InvalidRequest.Code || len(codes["cfg-single"]) != 1 || codes["cfg-single"][0] != 0 {
		t.Errorf("duplicate names: %v", codes)
	}
	if _, ok := metadataTopics(t, cl)["cfg-dup"]; ok {
		t.Error("duplicated topic was created")
	}

	// Manual assignment: only this node, counts left at -1.
	assign := func(name string, replicas ...int32) kmsg.CreateTopicsResponseTopic {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, -1, -1
		for p := range int32(2) {
			ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			ra.Partition, ra.Replicas = p, replicas
			rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0]
	}
	if r := assign("cfg-manual", nodeID); r.ErrorCode != 0 || r.NumPartitions != 2 || r.ReplicationFactor != 1 {
		t.Errorf("manual assignment: code %d %v, %d partitions, rf %d", r.ErrorCode, r.ErrorMessage, r.NumPartitions, r.ReplicationFactor)
	}
	if r := assign("cfg-manual2", nodeID, nodeID+1); r.ErrorCode != kerr.InvalidReplicaAssignment.Code {
		t.Errorf("assignment to an unknown broker: code %d, want INVALID_REPLICA_ASSIGNMENT", r.ErrorCode)
	}
}

func TestConfigsCreateTopicsValidateOnly(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)

	rs, err := adm.ValidateCreateTopics(ctx(t), 4, 1, map[string]*string{"retention.bytes": kadm.StringPtr("1048576")}, "cfg-dry")
	if err != nil {
		t.Fatal(err)
	}
	r := rs["cfg-dry"]
	if r.Err != nil || r.NumPartitions != 4 || r.ReplicationFactor != 1 {
		t.Fatalf("validate-only: %v (%s), %d partitions, rf %d", r.Err, r.ErrMessage, r.NumPartitions, r.ReplicationFactor)
	}
	if c := r.Configs["retention.bytes"]; c.MaybeValue() != "1048576" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("validate-only retention.bytes = %q (%v)", c.MaybeValue(), c.Source)
	}
	if _, ok := metadataTopics(t, cl)["cfg-dry"]; ok {
		t.Fatal("validate-only created the topic")
	}
	// Everything is validated.
	rs, err = adm.ValidateCreateTopics(ctx(t), 1, 2, nil, "cfg-dry")
	if err != nil || !errors.Is(rs["cfg-dry"].Err, kerr.InvalidReplicationFactor) {
		t.Errorf("validate-only rf 2: %v %v", err, rs["cfg-dry"].Err)
	}
	rs, err = adm.ValidateCreateTopics(ctx(t), 1, 1, map[string]*string{"segment.bytes": kadm.StringPtr("100")}, "cfg-dry")
	if err != nil || !errors.Is(rs["cfg-dry"].Err, kerr.InvalidConfig) {
		t.Errorf("validate-only segment.bytes=100: %v %v", err, rs["cfg-dry"].Err)
	}
	// The real creation afterwards works.
	createTopic(t, adm, "cfg-dry", 4, nil)
}

func TestConfigsDescribeTopic(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{"log.retention.ms": "7200000", "message.max.bytes": "2000000"})
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "cfg-describe", 1, map[string]*string{"retention.ms": kadm.StringPtr("60000"), "delete.retention.ms": kadm.StringPtr("1000")})

	rcs, err := adm.DescribeTopicConfigs(ctx(t), "cfg-describe")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("cfg-describe", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe: %v %v", err, rc.Err)
	}
	configs := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		configs[c.Key] = c
	}
	if len(configs) != 33 {
		t.Errorf("described %d topic configs, want Kafka 4.0's 33", len(configs))
	}
	type syn struct {
		key, value string
		source     kmsg.ConfigSource
	}
	for key, want := range map[string]struct {
		value    string
		source   kmsg.ConfigSource
		synonyms []syn
	}{
		"retention.ms": {"60000", kmsg.ConfigSourceDynamicTopicConfig, []syn{
			{"retention.ms", "60000", kmsg.ConfigSourceDynamicTopicConfig},
			{"log.retention.ms", "7200000", kmsg.ConfigSourceStaticBrokerConfig},
			{"log.retention.hours", "168", kmsg.ConfigSourceDefaultConfig},
		}},
		"max.message.bytes": {"2000000", kmsg.ConfigSourceStaticBrokerConfig, []syn{
			{"message.max.bytes", "2000000", kmsg.ConfigSourceStaticBrokerConfig},
			{"message.max.bytes", "1048588", kmsg.ConfigSourceDefaultConfig},
		}},
		"segment.bytes": {"1073741824", kmsg.ConfigSourceDefaultConfig, []syn{
			{"log.segment.bytes", "1073741824", kmsg.ConfigSourceDefaultConfig},
		}},
		"delete.retention.ms": {"1000", kmsg.ConfigSourceDynamicTopicConfig, []syn{
			{"delete.retention.ms", "1000", kmsg.ConfigSourceDynamicTopicConfig},
			{"log.cleaner.delete.retention.ms", "86400000", kmsg.ConfigSourceDefaultConfig},
		}},
		"compression.type": {"producer", kmsg.ConfigSourceDefaultConfig, []syn{
			{"compression.type", "producer", kmsg.ConfigSourceDefaultConfig},
		}},
		"segment.ms": {"604800000", kmsg.ConfigSourceDefaultConfig, nil},
	} {
		c := configs[key]
		var got []syn
		for _, s := range c.Synonyms {
			got = append(got, syn{s.Key, *s.Value, s.Source})
		}
		if c.MaybeValue() != want.value || c.Source != want.source || !slices.Equal(got, want.synonyms) {
			t.Errorf("%s = %q (%v) synonyms %v, want %q (%v) %v", key, c.MaybeValue(), c.Source, got, want.value, want.source, want.synonyms)
		}
	}

	// Unknown topic, illegal name.
	rcs, err = adm.DescribeTopicConfigs(ctx(t), "cfg-nope")
	if err != nil {
		t.Fatal(err)
	}
	if rc, _ := rcs.On("cfg-nope", nil); !errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", rc.Err)
	}

	// Names filter, documentation and types (v3+), through a raw request.
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeDocumentation = true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "cfg-describe"
	rr.ConfigNames = []string{"retention.ms", "cleanup.policy", "no.such.config"}
	req.Resources = append(req.Resources, rr)
	bad := kmsg.NewDescribeConfigsRequestResource()
	bad.ResourceType, bad.ResourceName = kmsg.ConfigResourceTypeTopic, "bad name"
	req.Resources = append(req.Resources, bad)
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	res := resp.Resources[0]
	if res.ErrorCode != 0 || len(res.Configs) != 2 {
		t.Fatalf("filtered describe: code %d, %d configs", res.ErrorCode, len(res.Configs))
	}
	for _, c := range res.Configs {
		wantType := map[string]kmsg.ConfigType{"retention.ms": kmsg.ConfigTypeLong, "cleanup.policy": kmsg.ConfigTypeList}[c.Name]
		if c.ConfigType != wantType || c.Documentation == nil || *c.Documentation == "" || c.ConfigSynonyms != nil {
			t.Errorf("%s: type %v, doc %v, synonyms %v (none requested)", c.Name, c.ConfigType, c.Documentation, c.ConfigSynonyms)
		}
	}
	if res := resp.Resources[1]; res.ErrorCode != kerr.InvalidTopicException.Code {
		t.Errorf("illegal topic name: code %d, want INVALID_TOPIC_EXCEPTION", res.ErrorCode)
	}
}

func TestConfigsDescribeBroker(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{"num.partitions": "3"})
	cl := b.client(t)
	adm := kadm.NewClient(cl)

	rcs, err := adm.DescribeBrokerConfigs(ctx(t), nodeID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) != 1 || rcs[0].Err != nil {
		t.Fatalf("describe broker: %+v", rcs)
	}
	configs := map[string]kadm.Config{}
	for _, c := range rcs[0].Configs {
		configs[c.Key] = c
	}
	if c := configs["num.partitions"]; c.MaybeValue() != "3" || c.Source != kmsg.ConfigSourceStaticBrokerConfig ||
		len(c.Synonyms) != 2 || c.Synonyms[1].Source != kmsg.ConfigSourceDefaultConfig || *c.Synonyms[1].Value != "1" {
		t.Errorf("num.partitions: %q %v %+v", c.MaybeValue(), c.Source, c.Synonyms)
	}
	if c := configs["log.segment.bytes"]; c.MaybeValue() != "1073741824" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("log.segment.bytes: %q %v", c.MaybeValue(), c.Source)
	}
	if c, ok := configs["log.retention.ms"]; !ok || c.Value != nil || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("log.retention.ms (no default): %+v", c)
	}
	if _, ok := configs["compression.type"]; !ok {
		t.Error("compression.type missing from the broker configs")
	}

	// "" is the cluster-wide dynamic defaults: none. Another id is refused.
	rcs, err = adm.DescribeBrokerConfigs(ctx(t))
	if err != nil || len(rcs) != 1 || rcs[0].Err != nil || len(rcs[0].Configs) != 0 {
		t.Errorf("describe cluster defaults: %v %+v", err, rcs)
	}
	req := kmsg.NewPtrDescribeConfigsRequest()
	for _, name := range []string{"2", "x"} {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, name
		req.Resources = append(req.Resources, rr)
	}
	logger := kmsg.NewDescribeConfigsRequestResource()
	logger.ResourceType, logger.ResourceName = kmsg.ConfigResourceTypeBrokerLogger, "1"
	req.Resources = append(req.Resources, logger)
	resp, err := cl.Broker(nodeID).RetriableRequest(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range resp.(*kmsg.DescribeConfigsResponse).Resources {
		switch res.ResourceType {
		case kmsg.ConfigResourceTypeBroker:
			if res.ErrorCode != kerr.InvalidRequest.Code {
				t.Errorf("broker %q: code %d, want INVALID_REQUEST", res.ResourceName, res.ErrorCode)
			}
		case kmsg.ConfigResourceTypeBrokerLogger:
			if res.ErrorCode != 0 || len(res.Configs) != 1 || res.Configs[0].Name != "root" || res.Configs[0].Value == nil {
				t.Errorf("broker logger: code %d %+v", res.ErrorCode, res.Configs)
			}
		}
	}
}

func TestConfigsIncrementalAlter(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	const topic = "cfg-incr"
	createTopic(t, adm, topic, 1, map[string]*string{"segment.ms": kadm.StringPtr("3600000")})

	alter := func(validate bool, ops ...kadm.AlterConfig) kadm.AlterConfigsResponse {
		t.Helper()
		f := adm.AlterTopicConfigs
		if validate {
			f = adm.ValidateAlterTopicConfigs
		}
		rs, err := f(ctx(t), ops, topic)
		if err != nil {
			t.Fatal(err)
		}
		r, err := rs.On(topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	set := func(k, v string) kadm.AlterConfig { return kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v} }

	if r := alter(false, set("retention.ms", "120000"), kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "segment.ms"},
		kadm.AlterConfig{Op: kadm.AppendConfig, Name: "leader.replication.throttled.replicas", Value: kadm.StringPtr("0:1")}); r.Err != nil {
		t.Fatalf("set/delete/append: %v %s", r.Err, r.ErrMessage)
	}
	if r := alter(false, kadm.AlterConfig{Op: kadm.AppendConfig, Name: "leader.replication.throttled.replicas", Value: kadm.StringPtr("1:1")}); r.Err != nil {
		t.Fatalf("append: %v %s", r.Err, r.ErrMessage)
	}
	if r := alter(false, kadm.AlterConfig{Op: kadm.SubtractConfig, Name: "leader.replication.throttled.replicas", Value: kadm.StringPtr("0:1")}); r.Err != nil {
		t.Fatalf("subtract: %v %s", r.Err, r.ErrMessage)
	}
	// Validate-only changes nothing.
	if r := alter(true, set("retention.ms", "1")); r.Err != nil {
		t.Fatalf("validate-only: %v %s", r.Err, r.ErrMessage)
	}
	want := map[string]kmsg.ConfigSource{
		"retention.ms":                          kmsg.ConfigSourceDynamicTopicConfig,
		"segment.ms":                            kmsg.ConfigSourceDefaultConfig,
		"leader.replication.throttled.replicas": kmsg.ConfigSourceDynamicTopicConfig,
	}
	values := map[string]string{"retention.ms": "120000", "segment.ms": "604800000", "leader.replication.throttled.replicas": "1:1"}
	checkTopicConfigs(t, adm, topic, values, want)

	for _, tc := range []struct {
		op   kadm.AlterConfig
		want *kerr.Error
		msg  string
	}{
		{kadm.AlterConfig{Op: kadm.AppendConfig, Name: "retention.ms", Value: kadm.StringPtr("1")}, kerr.InvalidConfig,
			"Can't APPEND to key retention.ms because its type is not LIST."},
		{kadm.AlterConfig{Op: kadm.SubtractConfig, Name: "no.such", Value: kadm.StringPtr("1")}, kerr.InvalidConfig,
			"Can't SUBTRACT to key no.such because its type is not LIST."},
		{set("no.such", "1"), kerr.InvalidConfig, "Unknown topic config name: no.such"},
		{set("retention.ms", "-5"), kerr.InvalidConfig, "Value must be at least -1"},
		{set("compression.type", "zstd"), kerr.InvalidConfig, "only producer is supported"},
		{kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms"}, kerr.InvalidRequest, "Null value not supported for : retention.ms"},
	} {
		if r := alter(false, tc.op); !errors.Is(r.Err, tc.want) || !strings.Contains(r.ErrMessage, tc.msg) {
			t.Errorf("%+v: %v %q, want %v %q", tc.op, r.Err, r.ErrMessage, tc.want, tc.msg)
		}
	}
	checkTopicConfigs(t, adm, topic, values, want) // failures changed nothing

	rs, err := adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{set("retention.ms", "1000")}, "cfg-missing")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := rs.On("cfg-missing", nil); !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", r.Err)
	}

	// Broker configs are not dynamic in kbroker.
	brs, err := adm.AlterBrokerConfigs(ctx(t), []kadm.AlterConfig{set("log.retention.ms", "1000")}, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	if len(brs) != 1 || !errors.Is(brs[0].Err, kerr.InvalidRequest) || !strings.Contains(brs[0].ErrMessage, "Cannot update these configs dynamically") {
		t.Errorf("alter broker config: %+v", brs)
	}
}

// A changed config takes effect on the partition logs at once.
func TestConfigsAlterTakesEffect(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	cl := b.client(t, kgo.DefaultProduceTopic("cfg-effect"), kgo.DisableIdempotentWrite(), kgo.RecordRetries(1))
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "cfg-effect", 1, nil)
	big := make([]byte, 4096)
	rand.Read(big) // incompressible: kgo compresses batches by default
	produceSync(t, cl, &kgo.Record{Value: big})

	small := "1024"
	rs, err := adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &small}}, "cfg-effect")
	if err != nil || rs[0].Err != nil {
		t.Fatalf("alter: %v %+v", err, rs)
	}
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Value: big}).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("produce over the new max.message.bytes: %v, want MESSAGE_TOO_LARGE", err)
	}
}

func TestConfigsAlterLegacy(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	adm := b.admin(t)
	const topic = "cfg-legacy"
	createTopic(t, adm, topic, 1, map[string]*string{"retention.ms": kadm.StringPtr("60000"), "segment.ms": kadm.StringPtr("60000")})

	// AlterConfigs replaces the whole override set.
	rs, err := adm.AlterTopicConfigsState(ctx(t), []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr("5000")}}, topic)
	if err != nil || rs[0].Err != nil {
		t.Fatalf("alter state: %v %+v", err, rs)
	}
	checkTopicConfigs(t, adm, topic,
		map[string]string{"max.message.bytes": "5000", "retention.ms": "604800000", "segment.ms": "604800000"},
		map[string]kmsg.ConfigSource{
			"max.message.bytes": kmsg.ConfigSourceDynamicTopicConfig,
			"retention.ms":      kmsg.ConfigSourceDefaultConfig,
			"segment.ms":        kmsg.ConfigSourceDefaultConfig,
		})

	// Validate-only and invalid sets change nothing.
	rs, err = adm.ValidateAlterTopicConfigsState(ctx(t), []kadm.AlterConfig{{Name: "retention.ms", Value: kadm.StringPtr("1")}}, topic)
	if err != nil || rs[0].Err != nil {
		t.Fatalf("validate-only alter state: %v %+v", err, rs)
	}
	rs, err = adm.AlterTopicConfigsState(ctx(t), []kadm.AlterConfig{{Name: "retention.ms", Value: kadm.StringPtr("1")}, {Name: "bogus", Value: kadm.StringPtr("1")}}, topic)
	if err != nil || !errors.Is(rs[0].Err, kerr.InvalidConfig) || rs[0].ErrMessage != "Unknown topic config name: bogus" {
		t.Fatalf("alter state with unknown key: %v %+v", err, rs)
	}
	checkTopicConfigs(t, adm, topic, map[string]string{"max.message.bytes": "5000", "retention.ms": "604800000"}, nil)

	// The same resource twice: both refused.
	req := kmsg.NewPtrAlterConfigsRequest()
	for range 2 {
		rr := kmsg.NewAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
		req.Resources = append(req.Resources, rr)
	}
	resp, err := req.RequestWith(ctx(t), b.client(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Resources {
		if r.ErrorCode != kerr.InvalidRequest.Code {
			t.Errorf("duplicate resource: code %d, want INVALID_REQUEST", r.ErrorCode)
		}
	}

	// Broker resources: an empty set is fine, any key is refused.
	brs, err := adm.AlterBrokerConfigsState(ctx(t), nil, nodeID)
	if err != nil || brs[0].Err != nil {
		t.Errorf("empty broker alter: %v %+v", err, brs)
	}
	brs, err = adm.AlterBrokerConfigsState(ctx(t), []kadm.AlterConfig{{Name: "num.partitions", Value: kadm.StringPtr("2")}}, nodeID)
	if err != nil || !errors.Is(brs[0].Err, kerr.InvalidRequest) || brs[0].ErrMessage != "Cannot update these configs dynamically: Set(num.partitions)" {
		t.Errorf("broker alter: %v %+v", err, brs)
	}
}

func TestConfigsSurviveRestart(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	adm := b.admin(t)
	const topic = "cfg-restart"
	createTopic(t, adm, topic, 2, map[string]*string{"retention.bytes": kadm.StringPtr("10485760"), "min.compaction.lag.ms": kadm.StringPtr("5")})
	rs, err := adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{
		{Name: "message.timestamp.type", Value: kadm.StringPtr("LogAppendTime")},
		{Op: kadm.DeleteConfig, Name: "min.compaction.lag.ms"},
	}, topic)
	if err != nil || rs[0].Err != nil {
		t.Fatalf("alter: %v %+v", err, rs)
	}
	values := map[string]string{"retention.bytes": "10485760", "message.timestamp.type": "LogAppendTime", "min.compaction.lag.ms": "0"}
	sources := map[string]kmsg.ConfigSource{
		"retention.bytes":        kmsg.ConfigSourceDynamicTopicConfig,
		"message.timestamp.type": kmsg.ConfigSourceDynamicTopicConfig,
		"min.compaction.lag.ms":  kmsg.ConfigSourceDefaultConfig,
	}
	checkTopicConfigs(t, adm, topic, values, sources)

	b = b.restart(t)
	adm = b.admin(t)
	checkTopicConfigs(t, adm, topic, values, sources)
	if md := metadataTopics(t, b.client(t))[topic]; len(md.Partitions) != 2 {
		t.Errorf("partitions after restart: %d", len(md.Partitions))
	}
}

// checkTopicConfigs describes topic and compares the given keys' values and
// (when sources is non-nil) sources.
func checkTopicConfigs(t *testing.T, adm *kadm.Client, topic string, values map[string]string, sources map[string]kmsg.ConfigSource) {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, rc.Err)
	}
	for _, c := range rc.Configs {
		if v, ok := values[c.Key]; ok && c.MaybeValue() != v {
			t.Errorf("%s: %s = %q, want %q", topic, c.Key, c.MaybeValue(), v)
		}
		if s, ok := sources[c.Key]; ok && c.Source != s {
			t.Errorf("%s: %s source %v, want %v", topic, c.Key, c.Source, s)
		}
	}
}
