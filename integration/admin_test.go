package integration

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// nodeID is the broker's node.id default.
const nodeID = 1

// Admin APIs through kadm, and raw kmsg requests where kadm has no helper
// or would refuse to send what is being tested.

func TestAdminDeleteTopicsByName(t *testing.T) {
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "del-name", 2, nil)
	produceSync(t, cl, &kgo.Record{Topic: "del-name", Value: value(0)})
	id := metadataTopics(t, cl)["del-name"].TopicID

	resp, err := adm.DeleteTopic(ctx(t), "del-name")
	if err != nil {
		t.Fatalf("delete: %v (%s)", err, resp.ErrMessage)
	}
	if resp.ID != id {
		t.Errorf("deleted topic id %x, want %x", resp.ID, id)
	}
	if _, ok := metadataTopics(t, cl)["del-name"]; ok {
		t.Fatal("deleted topic still listed by Metadata")
	}

	// Unknown names: UNKNOWN_TOPIC_OR_PARTITION with Kafka's default message.
	rs, err := adm.DeleteTopics(ctx(t), "del-name")
	if err != nil {
		t.Fatal(err)
	}
	if r := rs["del-name"]; !errors.Is(r.Err, kerr.UnknownTopicOrPartition) || r.ErrMessage != kerr.UnknownTopicOrPartition.Description {
		t.Errorf("second delete: %v %q, want UNKNOWN_TOPIC_OR_PARTITION", r.Err, r.ErrMessage)
	}

	// The name is free again: a new topic with a new id and an empty log.
	createTopic(t, adm, "del-name", 1, nil)
	md := metadataTopics(t, cl)["del-name"]
	if md.ErrorCode != 0 || len(md.Partitions) != 1 || md.TopicID == id {
		t.Fatalf("recreated topic: error %d, %d partitions, id %x (old %x)", md.ErrorCode, len(md.Partitions), md.TopicID, id)
	}
	ends, err := adm.ListEndOffsets(ctx(t), "del-name")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("del-name", 0); o.Offset != 0 {
		t.Errorf("recreated topic end offset %d, want 0", o.Offset)
	}

	// Deletion survives a restart.
	createTopic(t, adm, "del-gone", 1, nil)
	if _, err := adm.DeleteTopic(ctx(t), "del-gone"); err != nil {
		t.Fatal(err)
	}
	b = b.restart(t)
	topics := metadataTopics(t, b.client(t))
	if _, ok := topics["del-gone"]; ok {
		t.Error("deleted topic is back after restart")
	}
	if _, ok := topics["del-name"]; !ok {
		t.Error("recreated topic lost after restart")
	}
}

func TestAdminDeleteTopicsByID(t *testing.T) {
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "del-id", 1, nil)
	createTopic(t, adm, "del-both", 1, nil)
	ids := map[string][16]byte{}
	for name, mt := range metadataTopics(t, cl) {
		ids[name] = mt.TopicID
	}

	req := kmsg.NewPtrDeleteTopicsRequest()
	byID := kmsg.NewDeleteTopicsRequestTopic()
	byID.TopicID = ids["del-id"]
	unknown := kmsg.NewDeleteTopicsRequestTopic()
	unknown.TopicID = [16]byte{0xde, 0xad}
	both := kmsg.NewDeleteTopicsRequestTopic() // name and id: refused
	both.Topic, both.TopicID = kmsg.StringPtr("del-both"), ids["del-both"]
	req.Topics = []kmsg.DeleteTopicsRequestTopic{byID, unknown, both}
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Version != 6 || len(resp.Topics) != 3 {
		t.Fatalf("v%d response with %d topics, want v6 with 3", resp.Version, len(resp.Topics))
	}
	got := resp.Topics[0]
	if got.ErrorCode != 0 || got.Topic == nil || *got.Topic != "del-id" || got.TopicID != ids["del-id"] {
		t.Errorf("delete by id: code %d topic %v id %x", got.ErrorCode, got.Topic, got.TopicID)
	}
	got = resp.Topics[1]
	if got.ErrorCode != kerr.UnknownTopicID.Code || got.Topic != nil || got.TopicID != unknown.TopicID {
		t.Errorf("unknown id: code %d topic %v id %x, want UNKNOWN_TOPIC_ID", got.ErrorCode, got.Topic, got.TopicID)
	}
	got = resp.Topics[2]
	if got.ErrorCode != kerr.InvalidRequest.Code || got.ErrorMessage == nil || *got.ErrorMessage != "You may not specify both topic name and topic id." {
		t.Errorf("name and id: code %d message %v, want INVALID_REQUEST", got.ErrorCode, got.ErrorMessage)
	}

	topics := metadataTopics(t, cl)
	if _, ok := topics["del-id"]; ok {
		t.Error("topic deleted by id still listed by Metadata")
	}
	if _, ok := topics["del-both"]; !ok {
		t.Error("topic of a refused entry was deleted")
	}

	// The same id twice: refused once, nothing deleted.
	req = kmsg.NewPtrDeleteTopicsRequest()
	dup := kmsg.NewDeleteTopicsRequestTopic()
	dup.TopicID = ids["del-both"]
	req.Topics = []kmsg.DeleteTopicsRequestTopic{dup, dup}
	if resp, err = req.RequestWith(ctx(t), cl); err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("duplicate id: %+v, want one INVALID_REQUEST", resp.Topics)
	}
	if _, ok := metadataTopics(t, cl)["del-both"]; !ok {
		t.Error("topic named twice was deleted")
	}
}

// Before v6 topics are named only (TopicNames); v5 still carries messages.
func TestAdminDeleteTopicsV5(t *testing.T) {
	b := startBroker(t, nil)
	v := kversion.Stable()
	v.SetMaxKeyVersion(20, 5)
	cl := b.client(t, kgo.MaxVersions(v))
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "del-v5", 1, nil)

	rs, err := adm.DeleteTopics(ctx(t), "del-v5", "del-v5-missing")
	if err != nil {
		t.Fatal(err)
	}
	if r := rs["del-v5"]; r.Err != nil || r.ID != ([16]byte{}) {
		t.Errorf("delete v5: %v, id %x (no ids before v6)", r.Err, r.ID)
	}
	if r := rs["del-v5-missing"]; !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("missing v5: %v", r.Err)
	}
	if _, ok := metadataTopics(t, cl)["del-v5"]; ok {
		t.Error("deleted topic still listed by Metadata")
	}
}

func TestAdminDeleteTopicsDisabled(t *testing.T) {
	b := startBroker(t, map[string]string{"delete.topic.enable": "false"})
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "del-disabled", 1, nil)

	_, err := adm.DeleteTopic(ctx(t), "del-disabled")
	if !errors.Is(err, kerr.TopicDeletionDisabled) {
		t.Fatalf("delete with delete.topic.enable=false: %v, want TOPIC_DELETION_DISABLED", err)
	}
	if _, ok := metadataTopics(t, cl)["del-disabled"]; !ok {
		t.Error("topic deleted although deletion is disabled")
	}
}

func TestAdminDeleteRecords(t *testing.T) {
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	const topic = "delrec"
	createTopic(t, adm, topic, 1, nil)
	for i := range 10 {
		produceSync(t, cl, &kgo.Record{Topic: topic, Value: value(i)})
	}

	rs, err := adm.DeleteRecords(ctx(t), kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[topic][0]; r.Err != nil || r.LowWatermark != 4 {
		t.Fatalf("delete before 4: low watermark %d, err %v", r.LowWatermark, r.Err)
	}
	if got := startOffset(t, adm, topic, 0); got != 4 {
		t.Fatalf("log start offset %d after DeleteRecords(4), want 4", got)
	}
	recs := consumeN(t, b.Addr(), topic, 6)
	if recs[0].Offset != 4 || string(recs[0].Value) != string(value(4)) {
		t.Errorf("first record after deletion: offset %d value %q", recs[0].Offset, recs[0].Value)
	}

	// A lower offset is a no-op; beyond the high watermark is refused.
	rs, err = adm.DeleteRecords(ctx(t), kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[topic][0]; r.Err != nil || r.LowWatermark != 4 {
		t.Errorf("delete before 2: low watermark %d, err %v, want 4", r.LowWatermark, r.Err)
	}
	rs, err = adm.DeleteRecords(ctx(t), kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 11}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[topic][0]; !errors.Is(r.Err, kerr.OffsetOutOfRange) || r.LowWatermark != -1 {
		t.Errorf("delete before 11 (HW 10): low watermark %d, err %v, want OFFSET_OUT_OF_RANGE", r.LowWatermark, r.Err)
	}

	// The new start survives a restart.
	b = b.restart(t)
	cl = b.client(t)
	adm = kadm.NewClient(cl)
	if got := startOffset(t, adm, topic, 0); got != 4 {
		t.Fatalf("log start offset %d after restart, want 4", got)
	}

	// -1 means the high watermark: everything goes.
	rs, err = adm.DeleteRecords(ctx(t), kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[topic][0]; r.Err != nil || r.LowWatermark != 10 {
		t.Errorf("delete before -1: low watermark %d, err %v, want 10", r.LowWatermark, r.Err)
	}
	if got := startOffset(t, adm, topic, 0); got != 10 {
		t.Errorf("log start offset %d after DeleteRecords(-1), want 10", got)
	}

	// Unknown partitions, asked of the broker directly (kadm shards by
	// leader and would not send them).
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = 7, 0
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := direct(t, cl, req).(*kmsg.DeleteRecordsResponse)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.UnknownTopicOrPartition.Code || p.LowWatermark != -1 {
		t.Errorf("unknown partition: code %d low watermark %d", p.ErrorCode, p.LowWatermark)
	}
}

// Records go only where cleanup.policy has delete (Partition.deleteRecordsOnLeader);
// the empty policy (keep forever) shows it, as compact alone would.
func TestAdminDeleteRecordsPolicyViolation(t *testing.T) {
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	const topic = "delrec-keep"
	createTopic(t, adm, topic, 1, map[string]*string{"cleanup.policy": kmsg.StringPtr("")})
	produceSync(t, cl, &kgo.Record{Topic: topic, Value: value(0)})

	rs, err := adm.DeleteRecords(ctx(t), kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[topic][0]; !errors.Is(r.Err, kerr.PolicyViolation) || r.LowWatermark != -1 {
		t.Errorf("delete records with an empty cleanup.policy: %v, low watermark %d, want POLICY_VIOLATION", r.Err, r.LowWatermark)
	}
	if got := startOffset(t, adm, topic, 0); got != 0 {
		t.Errorf("log start offset %d after a refused DeleteRecords, want 0", got)
	}
}

func TestAdminCreatePartitions(t *testing.T) {
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	const topic = "grow"
	createTopic(t, adm, topic, 1, nil)

	// ValidateOnly checks and changes nothing.
	rs, err := adm.ValidateUpdatePartitions(ctx(t), 3, topic)
	if err != nil || rs[topic].Err != nil {
		t.Fatalf("validate grow: %v / %v", err, rs[topic].Err)
	}
	if n := len(metadataTopics(t, cl)[topic].Partitions); n != 1 {
		t.Fatalf("validate-only grew the topic to %d partitions", n)
	}

	rs, err = adm.UpdatePartitions(ctx(t), 3, topic)
	if err != nil || rs[topic].Err != nil {
		t.Fatalf("grow: %v / %v (%s)", err, rs[topic].Err, rs[topic].ErrMessage)
	}
	md := metadataTopics(t, cl)[topic]
	if len(md.Partitions) != 3 {
		t.Fatalf("%d partitions after growing to 3", len(md.Partitions))
	}
	for _, p := range md.Partitions {
		if p.Leader != nodeID || !slices.Equal(p.Replicas, []int32{nodeID}) {
			t.Errorf("partition %d: leader %d replicas %v", p.Partition, p.Leader, p.Replicas)
		}
	}

	// The new partitions take and serve records, also after a restart.
	pcl := b.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(3) {
		produceSync(t, pcl, &kgo.Record{Topic: topic, Partition: p, Value: value(int(p))})
	}
	if recs := consumeN(t, b.Addr(), topic, 3); !coversPartitions(recs, 3) {
		t.Errorf("consumed %v, want one record from each of 3 partitions", recordPartitions(recs))
	}
	b = b.restart(t)
	cl = b.client(t)
	adm = kadm.NewClient(cl)
	if n := len(metadataTopics(t, cl)[topic].Partitions); n != 3 {
		t.Fatalf("%d partitions after restart, want 3", n)
	}
	if recs := consumeN(t, b.Addr(), topic, 3); !coversPartitions(recs, 3) {
		t.Errorf("after restart consumed %v, want one record from each of 3 partitions", recordPartitions(recs))
	}

	// Refusals carry Kafka's messages.
	for _, c := range []struct {
		count int
		msg   string
	}{
		{3, "Topic already has 3 partition(s)."},
		{2, "The topic grow currently has 3 partition(s); 2 would not be an increase."},
	} {
		rs, err = adm.UpdatePartitions(ctx(t), c.count, topic)
		if err != nil {
			t.Fatal(err)
		}
		if r := rs[topic]; !errors.Is(r.Err, kerr.InvalidPartitions) || r.ErrMessage != c.msg {
			t.Errorf("set %d: %v %q, want INVALID_PARTITIONS %q", c.count, r.Err, r.ErrMessage, c.msg)
		}
	}
	rs, err = adm.UpdatePartitions(ctx(t), 2, "grow-missing")
	if err != nil {
		t.Fatal(err)
	}
	if r := rs["grow-missing"]; !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", r.Err)
	}

	// Assignments may name only this node, one list per new partition.
	req := kmsg.NewPtrCreatePartitionsRequest()
	other := kmsg.NewCreatePartitionsRequestTopic()
	other.Topic, other.Count = topic, 4
	other.Assignment = []kmsg.CreatePartitionsRequestTopicAssignment{{Replicas: []int32{nodeID + 1}}}
	dup := kmsg.NewCreatePartitionsRequestTopic()
	dup.Topic, dup.Count = "grow-dup", 2
	req.Topics = []kmsg.CreatePartitionsRequestTopic{other, dup, dup}
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 2 {
		t.Fatalf("%d topic results, want 2 (duplicates answered once)", len(resp.Topics))
	}
	if r := resp.Topics[0]; r.ErrorCode != kerr.InvalidReplicaAssignment.Code || r.ErrorMessage == nil ||
		*r.ErrorMessage != "The manual partition assignment includes broker 2, but no such broker is registered." {
		t.Errorf("foreign broker: code %d message %v", r.ErrorCode, r.ErrorMessage)
	}
	if r := resp.Topics[1]; r.ErrorCode != kerr.InvalidRequest.Code || r.ErrorMessage == nil || *r.ErrorMessage != "Duplicate topic name." {
		t.Errorf("duplicate topic: code %d message %v", r.ErrorCode, r.ErrorMessage)
	}

	// A valid explicit assignment grows the topic.
	req = kmsg.NewPtrCreatePartitionsRequest()
	self := kmsg.NewCreatePartitionsRequestTopic()
	self.Topic, self.Count = topic, 4
	self.Assignment = []kmsg.CreatePartitionsRequestTopicAssignment{{Replicas: []int32{nodeID}}}
	req.Topics = []kmsg.CreatePartitionsRequestTopic{self}
	if resp, err = req.RequestWith(ctx(t), cl); err != nil {
		t.Fatal(err)
	}
	if r := resp.Topics[0]; r.ErrorCode != 0 {
		t.Fatalf("assigned to self: code %d message %v", r.ErrorCode, r.ErrorMessage)
	}
	if n := len(metadataTopics(t, cl)[topic].Partitions); n != 4 {
		t.Errorf("%d partitions after an assigned grow to 4", n)
	}
}

// One request may add at most 10,000 partitions (Kafka's
// MAX_PARTITIONS_PER_BATCH): past it nothing is created and the client gets
// POLICY_VIOLATION, and the broker goes on serving.
func TestAdminPartitionsPerRequestLimit(t *testing.T) {
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)

	// CreateTopics counts every topic of the request: 2 x 5,001 is over, so
	// neither topic is made, though each alone would be allowed.
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range []string{"huge-a", "huge-b"} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 5001, 1
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 2 {
		t.Fatalf("%d topic results, want 2", len(resp.Topics))
	}
	for _, r := range resp.Topics {
		if r.ErrorCode != kerr.PolicyViolation.Code || r.ErrorMessage == nil || *r.ErrorMessage != "Excessively large number of partitions per request." {
			t.Errorf("%s: code %d message %v, want POLICY_VIOLATION", r.Topic, r.ErrorCode, r.ErrorMessage)
		}
	}
	// A count that cannot be met by any file descriptor limit is refused at once too.
	// (kadm's CreateTopic returns the topic's error as its own.)
	if rs, _ := adm.CreateTopic(ctx(t), 2_000_000_000, 1, nil, "huge-c"); !errors.Is(rs.Err, kerr.PolicyViolation) {
		t.Fatalf("2e9 partitions: %v, want POLICY_VIOLATION", rs.Err)
	}
	md := metadataTopics(t, cl)
	for _, name := range []string{"huge-a", "huge-b", "huge-c"} {
		if _, ok := md[name]; ok {
			t.Errorf("%s was created", name)
		}
	}

	// CreatePartitions takes the growth from one budget per request: the
	// first topic's 9,999 new partitions fit, the second's 2 do not.
	createTopic(t, adm, "grow-a", 1, nil)
	createTopic(t, adm, "grow-b", 1, nil)
	preq := kmsg.NewPtrCreatePartitionsRequest()
	preq.ValidateOnly = true
	for _, c := range []struct {
		topic string
		count int32
	}{{"grow-a", 10_000}, {"grow-b", 3}} {
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = c.topic, c.count
		preq.Topics = append(preq.Topics, rt)
	}
	presp, err := preq.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(presp.Topics) != 2 {
		t.Fatalf("%d topic results, want 2", len(presp.Topics))
	}
	if r := presp.Topics[0]; r.ErrorCode != 0 {
		t.Errorf("grow-a by 9,999 (validate only): code %d message %v", r.ErrorCode, r.ErrorMessage)
	}
	if r := presp.Topics[1]; r.ErrorCode != kerr.PolicyViolation.Code || r.ErrorMessage == nil || *r.ErrorMessage != "Unable to perform excessively large batch operation." {
		t.Errorf("grow-b past the budget: code %d message %v, want POLICY_VIOLATION", r.ErrorCode, r.ErrorMessage)
	}
	prs, err := adm.UpdatePartitions(ctx(t), 2_000_000_000, "grow-a")
	if err != nil || !errors.Is(prs["grow-a"].Err, kerr.PolicyViolation) {
		t.Fatalf("grow to 2e9: %v / %v, want POLICY_VIOLATION", err, prs["grow-a"].Err)
	}
	for _, name := range []string{"grow-a", "grow-b"} {
		if n := len(metadataTopics(t, cl)[name].Partitions); n != 1 {
			t.Errorf("%s has %d partitions, want 1", name, n)
		}
	}

	// The broker still creates and serves a topic afterwards.
	createTopic(t, adm, "after-huge", 3, nil)
	produceSync(t, cl, &kgo.Record{Topic: "after-huge", Value: value(1)})
}

func TestAdminDescribeLogDirs(t *testing.T) {
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "logdirs", 2, nil)
	createTopic(t, adm, "logdirs-other", 1, nil)

	describe := func(s kadm.TopicsSet) kadm.DescribedLogDir {
		t.Helper()
		dirs, err := adm.DescribeBrokerLogDirs(ctx(t), nodeID, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(dirs) != 1 {
			t.Fatalf("%d log dirs, want 1", len(dirs))
		}
		for _, d := range dirs {
			if d.Err != nil {
				t.Fatalf("log dir %s: %v", d.Dir, d.Err)
			}
			return d
		}
		panic("unreachable")
	}

	abs, err := filepath.Abs(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	before := describe(nil)
	if before.Dir != abs {
		t.Errorf("log dir %q, want %q", before.Dir, abs)
	}
	if before.TotalBytes <= 0 || before.UsableBytes < 0 || before.UsableBytes > before.TotalBytes {
		t.Errorf("volume: total %d usable %d", before.TotalBytes, before.UsableBytes)
	}
	p0, ok := before.Topics.Lookup("logdirs", 0)
	if !ok {
		t.Fatalf("logdirs-0 not described: %+v", before.Topics)
	}

	pcl := b.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 20 {
		produceSync(t, pcl, &kgo.Record{Topic: "logdirs", Partition: 0, Value: value(i)})
	}
	after := describe(nil)
	q0, _ := after.Topics.Lookup("logdirs", 0)
	if q0.Size <= p0.Size {
		t.Errorf("logdirs-0 size %d after producing, was %d", q0.Size, p0.Size)
	}
	if q0.OffsetLag != 0 || q0.IsFuture {
		t.Errorf("logdirs-0: offset lag %d, future %v", q0.OffsetLag, q0.IsFuture)
	}
	if q1, _ := after.Topics.Lookup("logdirs", 1); q1.Size != 0 {
		t.Errorf("untouched logdirs-1 size %d, want 0", q1.Size)
	}

	// Only asked-for partitions carry entries.
	some := describe(kadm.TopicsSet{"logdirs": {1: {}}})
	if _, ok := some.Topics.Lookup("logdirs", 0); ok {
		t.Error("logdirs-0 described although only partition 1 was asked for")
	}
	if _, ok := some.Topics.Lookup("logdirs", 1); !ok {
		t.Error("logdirs-1 not described")
	}
	if _, ok := some.Topics.Lookup("logdirs-other", 0); ok {
		t.Error("logdirs-other-0 described although not asked for")
	}
}

func TestAdminDescribeCluster(t *testing.T) {
	b := startBroker(t, nil)
	cl := b.client(t)

	req := kmsg.NewPtrDescribeClusterRequest()
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 || resp.ClusterID != b.ClusterID() || resp.ControllerID != nodeID || resp.EndpointType != 1 {
		t.Errorf("describe cluster: code %d cluster %q (want %q) controller %d endpoint type %d",
			resp.ErrorCode, resp.ClusterID, b.ClusterID(), resp.ControllerID, resp.EndpointType)
	}
	if resp.ClusterAuthorizedOperations != -2147483648 {
		t.Errorf("authorized operations %d when not requested", resp.ClusterAuthorizedOperations)
	}
	host, port := splitAddr(t, b.Addr())
	if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != nodeID || resp.Brokers[0].Host != host ||
		resp.Brokers[0].Port != port || resp.Brokers[0].IsFenced {
		t.Errorf("brokers %+v, want node %d at %s:%d", resp.Brokers, nodeID, host, port)
	}

	// No authorizer: every cluster operation is allowed.
	req.IncludeClusterAuthorizedOperations = true
	if resp, err = req.RequestWith(ctx(t), cl); err != nil {
		t.Fatal(err)
	}
	ops := kadm.DecodeACLOperations(resp.ClusterAuthorizedOperations)
	want := []kadm.ACLOperation{
		kmsg.ACLOperationCreate, kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe,
		kmsg.ACLOperationClusterAction, kmsg.ACLOperationDescribeConfigs,
		kmsg.ACLOperationAlterConfigs, kmsg.ACLOperationIdempotentWrite,
	}
	slices.Sort(ops)
	slices.Sort(want)
	if !slices.Equal(ops, want) {
		t.Errorf("cluster authorized operations %v, want %v", ops, want)
	}

	// A broker is not a controller endpoint.
	for _, c := range []struct {
		endpointType int8
		code         int16
	}{{2, kerr.MismatchedEndpointType.Code}, {3, kerr.UnsupportedEndpointType.Code}} {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.EndpointType = c.endpointType
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != c.code || resp.ErrorMessage == nil || len(resp.Brokers) != 0 {
			t.Errorf("endpoint type %d: code %d message %v brokers %d, want code %d", c.endpointType, resp.ErrorCode, resp.ErrorMessage, len(resp.Brokers), c.code)
		}
	}
}

func TestAdminDescribeTopicPartitions(t *testing.T) {
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "dtp-a", 3, nil)
	createTopic(t, adm, "dtp-b", 2, nil)
	createTopic(t, adm, "dtp-c", 1, nil)
	ids := map[string][16]byte{}
	for name, mt := range metadataTopics(t, cl) {
		ids[name] = mt.TopicID
	}

	type page struct {
		parts  []string // "topic/partition" in response order
		cursor string   // "topic/partition" or ""
	}
	describe := func(topics []string, limit int32, cursor *kmsg.DescribeTopicPartitionsRequestCursor) (*kmsg.DescribeTopicPartitionsResponse, page) {
		t.Helper()
		req := kmsg.NewPtrDescribeTopicPartitionsRequest()
		for _, name := range topics {
			rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
			rt.Topic = name
			req.Topics = append(req.Topics, rt)
		}
		req.ResponsePartitionLimit = limit
		req.Cursor = cursor
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		var pg page
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				pg.parts = append(pg.parts, fmt.Sprintf("%s/%d", *rt.Topic, rp.Partition))
			}
		}
		if resp.NextCursor != nil {
			pg.cursor = fmt.Sprintf("%s/%d", resp.NextCursor.Topic, resp.NextCursor.Partition)
		}
		return resp, pg
	}

	// Everything fits: every partition's state, in name order.
	resp, pg := describe(nil, 100, nil)
	if want := []string{"dtp-a/0", "dtp-a/1", "dtp-a/2", "dtp-b/0", "dtp-b/1", "dtp-c/0"}; !slices.Equal(pg.parts, want) || pg.cursor != "" {
		t.Fatalf("all topics: %v cursor %q, want %v and no cursor", pg.parts, pg.cursor, want)
	}
	for _, rt := range resp.Topics {
		if rt.ErrorCode != 0 || rt.TopicID != ids[*rt.Topic] || rt.IsInternal {
			t.Errorf("%s: code %d id %x (want %x) internal %v", *rt.Topic, rt.ErrorCode, rt.TopicID, ids[*rt.Topic], rt.IsInternal)
		}
		ops := kadm.DecodeACLOperations(rt.AuthorizedOperations)
		if len(ops) != 8 || !slices.Contains(ops, kmsg.ACLOperationDescribe) {
			t.Errorf("%s: authorized operations %v, want all 8 topic operations", *rt.Topic, ops)
		}
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 || rp.LeaderID != nodeID || rp.LeaderEpoch != 0 ||
				!slices.Equal(rp.Replicas, []int32{nodeID}) || !slices.Equal(rp.ISR, []int32{nodeID}) ||
				len(rp.EligibleLeaderReplicas) != 0 || len(rp.LastKnownELR) != 0 || len(rp.OfflineReplicas) != 0 {
				t.Errorf("%s/%d: %+v", *rt.Topic, rp.Partition, rp)
			}
		}
	}

	// Pages of two, following the cursor to the end.
	listed := []string{"dtp-c", "dtp-a", "dtp-b"}
	var all []string
	var cursor *kmsg.DescribeTopicPartitionsRequestCursor
	var cursors []string
	for range 10 {
		resp, pg := describe(listed, 2, cursor)
		all = append(all, pg.parts...)
		if resp.NextCursor == nil {
			break
		}
		cursors = append(cursors, pg.cursor)
		cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: resp.NextCursor.Topic, Partition: resp.NextCursor.Partition}
	}
	if want := []string{"dtp-a/0", "dtp-a/1", "dtp-a/2", "dtp-b/0", "dtp-b/1", "dtp-c/0"}; !slices.Equal(all, want) {
		t.Errorf("paged: %v, want %v", all, want)
	}
	if want := []string{"dtp-a/2", "dtp-b/1"}; !slices.Equal(cursors, want) {
		t.Errorf("cursors %v, want %v", cursors, want)
	}

	// A limit used up exactly at a topic's end points at the next topic.
	if _, pg := describe(nil, 3, nil); pg.cursor != "dtp-b/0" || len(pg.parts) != 3 {
		t.Errorf("limit 3: %v cursor %q, want dtp-a's 3 partitions and cursor dtp-b/0", pg.parts, pg.cursor)
	}

	// Unknown and illegal names are reported; a cursor outside the list is
	// refused for every listed topic.
	resp, _ = describe([]string{"dtp-missing", "bad/name", "dtp-c"}, 10, nil)
	codes := map[string]int16{}
	for _, rt := range resp.Topics {
		codes[*rt.Topic] = rt.ErrorCode
	}
	if codes["dtp-missing"] != kerr.UnknownTopicOrPartition.Code || codes["bad/name"] != kerr.InvalidTopicException.Code || codes["dtp-c"] != 0 {
		t.Errorf("codes %v", codes)
	}
	resp, _ = describe([]string{"dtp-b"}, 10, &kmsg.DescribeTopicPartitionsRequestCursor{Topic: "dtp-a"})
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("cursor outside the list: %+v, want INVALID_REQUEST", resp.Topics)
	}
}

func TestAdminOffsetForLeaderEpoch(t *testing.T) {
	b := startBroker(t, nil)
	cl := b.client(t)
	adm := kadm.NewClient(cl)
	const topic = "ofle"
	createTopic(t, adm, topic, 2, nil)
	pcl := b.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 5 {
		produceSync(t, pcl, &kgo.Record{Topic: topic, Partition: 0, Value: value(i)})
	}

	var req kadm.OffsetForLeaderEpochRequest
	req.Add(topic, 0, 0)
	req.Add(topic, 1, 0)
	rs, err := adm.OffsetForLeaderEpoch(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[topic][0]; r.Err != nil || r.LeaderEpoch != 0 || r.EndOffset != 5 {
		t.Errorf("epoch 0 of %s-0: epoch %d end %d err %v, want 0 / 5", topic, r.LeaderEpoch, r.EndOffset, r.Err)
	}
	// An empty log knows no epoch: UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
	if r := rs[topic][1]; r.Err != nil || r.LeaderEpoch != -1 || r.EndOffset != -1 {
		t.Errorf("epoch 0 of empty %s-1: epoch %d end %d err %v, want -1 / -1", topic, r.LeaderEpoch, r.EndOffset, r.Err)
	}

	// Asked directly: an epoch newer than any known, a CurrentLeaderEpoch
	// ahead of the broker's, and an unknown partition.
	raw := kmsg.NewPtrOffsetForLeaderEpochRequest()
	raw.ReplicaID = -1
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = topic
	for _, c := range []struct{ partition, current, epoch int32 }{{0, -1, 7}, {0, 1, 0}, {9, -1, 0}} {
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = c.partition, c.current, c.epoch
		rt.Partitions = append(rt.Partitions, rp)
	}
	raw.Topics = append(raw.Topics, rt)
	resp := direct(t, cl, raw).(*kmsg.OffsetForLeaderEpochResponse)
	ps := resp.Topics[0].Partitions
	if len(ps) != 3 {
		t.Fatalf("%d partition results, want 3", len(ps))
	}
	if p := ps[0]; p.ErrorCode != 0 || p.LeaderEpoch != -1 || p.EndOffset != -1 {
		t.Errorf("epoch 7: code %d epoch %d end %d, want -1 / -1", p.ErrorCode, p.LeaderEpoch, p.EndOffset)
	}
	if p := ps[1]; p.ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Errorf("current epoch 1: code %d, want UNKNOWN_LEADER_EPOCH", p.ErrorCode)
	}
	if p := ps[2]; p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("partition 9: code %d, want UNKNOWN_TOPIC_OR_PARTITION", p.ErrorCode)
	}
}

// metadataTopics lists every topic with an uncached Metadata request (kadm
// caches metadata for seconds, which would hide deletions and growth).
func metadataTopics(t testing.TB, cl *kgo.Client) map[string]kmsg.MetadataResponseTopic {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	out := make(map[string]kmsg.MetadataResponseTopic)
	for _, mt := range resp.Topics {
		if mt.Topic != nil {
			out[*mt.Topic] = mt
		}
	}
	return out
}

// direct sends req to the broker itself, bypassing kgo's sharding by
// partition leader (which refuses unknown partitions client-side).
func direct(t testing.TB, cl *kgo.Client, req kmsg.Request) kmsg.Response {
	t.Helper()
	metadataTopics(t, cl) // learn the broker's node id
	resp, err := cl.Broker(nodeID).Request(ctx(t), req)
	if err != nil {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

func startOffset(t testing.TB, adm *kadm.Client, topic string, p int32) int64 {
	t.Helper()
	offs, err := adm.ListStartOffsets(ctx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := offs.Lookup(topic, p)
	if !ok || o.Err != nil {
		t.Fatalf("start offset of %s-%d: found %v, err %v", topic, p, ok, o.Err)
	}
	return o.Offset
}

func recordPartitions(recs []*kgo.Record) []int32 {
	var ps []int32
	for _, r := range recs {
		ps = append(ps, r.Partition)
	}
	slices.Sort(ps)
	return ps
}

func coversPartitions(recs []*kgo.Record, n int32) bool {
	want := make([]int32, n)
	for i := range want {
		want[i] = int32(i)
	}
	return slices.Equal(recordPartitions(recs), want)
}

func splitAddr(t testing.TB, addr string) (string, int32) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, int32(n)
}

// Without an authorizer, Metadata reports every operation when asked, as
// DescribeCluster does (kadm asks).
func TestMetadataAuthorizedOperations(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	createTopic(t, b.admin(t), "ops", 1, nil)
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 10
	req.IncludeClusterAuthorizedOperations, req.IncludeTopicAuthorizedOperations = true, true
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("ops")
	req.Topics = append(req.Topics, rt)
	// The cluster field exists in v8-v10 only; kgo would send v13.
	v10 := kversion.Stable()
	v10.SetMaxKeyVersion(3, 10)
	resp, err := req.RequestWith(ctx(t), b.client(t, kgo.MaxVersions(v10)))
	if err != nil {
		t.Fatal(err)
	}
	cluster := kadm.DecodeACLOperations(resp.AuthorizedOperations)
	topic := kadm.DecodeACLOperations(resp.Topics[0].AuthorizedOperations)
	if !slices.Contains(cluster, kmsg.ACLOperationClusterAction) || !slices.Contains(topic, kmsg.ACLOperationRead) ||
		!slices.Contains(topic, kmsg.ACLOperationWrite) {
		t.Fatalf("authorized operations: cluster %v, topic %v", cluster, topic)
	}
}
