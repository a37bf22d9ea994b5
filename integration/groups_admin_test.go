package integration

import (
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Group administration through kadm, with Kafka's error codes.
func TestGroupAdmin(t *testing.T) {
	b := startBroker(t, groupProps)
	adm := b.admin(t)
	const topic = "admin-topic"
	createTopic(t, adm, topic, 2, nil)
	createTopic(t, adm, "other", 1, nil)

	// A live member keeps "busy" non-empty.
	m := newGroupConsumer(t, b.Addr(), "busy", topic, "m")
	t.Cleanup(m.cl.Close)
	pollUntil(t, "member assigned", func() bool { return len(m.assignedOf()) == 2 }, m)

	// An offsets-only group ("simple" consumer): generation -1 commits.
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: topic, Partition: 0, At: 5, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx(t), "simple", offsets); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}

	listed, err := adm.ListGroups(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := listed.Groups(); !slices.Equal(got, []string{"busy", "simple"}) {
		t.Errorf("ListGroups: %v", got)
	}
	stable, err := adm.ListGroups(ctx(t), "Stable")
	if err != nil || !slices.Equal(stable.Groups(), []string{"busy"}) {
		t.Errorf("ListGroups(Stable): %v %v", stable.Groups(), err)
	}

	described, err := adm.DescribeGroups(ctx(t), "busy", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if d := described["busy"]; d.State != "Stable" || d.Protocol != "cooperative-sticky" || len(d.Members) != 1 || d.Err != nil {
		t.Errorf("busy: %+v", d)
	} else if a, _ := d.Members[0].Assigned.AsConsumer(); a == nil || len(a.Topics) != 1 || len(a.Topics[0].Partitions) != 2 {
		t.Errorf("busy member assignment: %+v", d.Members[0].Assigned)
	}
	if d := described["missing"]; !errorIs(d.Err, kerr.GroupIDNotFound) {
		t.Errorf("missing: %v", d.Err)
	}

	// OffsetDelete: a subscribed topic is protected, another is not.
	commitBusy := kadm.Offsets{}
	commitBusy.Add(kadm.Offset{Topic: "other", Partition: 0, At: 1, LeaderEpoch: -1})
	req := kmsg.NewPtrOffsetDeleteRequest()
	req.Group = "busy"
	for _, tp := range []string{topic, "other"} {
		rt := kmsg.NewOffsetDeleteRequestTopic()
		rt.Topic = tp
		rt.Partitions = []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx(t), m.cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("OffsetDelete: %v %v", err, resp)
	}
	if c := resp.Topics[0].Partitions[0].ErrorCode; c != kerr.GroupSubscribedToTopic.Code {
		t.Errorf("OffsetDelete of a subscribed topic: %v", kerr.ErrorForCode(c))
	}
	if c := resp.Topics[1].Partitions[0].ErrorCode; c != 0 {
		t.Errorf("OffsetDelete of an unsubscribed topic: %v", kerr.ErrorForCode(c))
	}

	deleted, err := adm.DeleteGroups(ctx(t), "busy", "simple", "missing")
	if err != nil {
		t.Fatal(err)
	}
	for group, want := range map[string]error{"busy": kerr.NonEmptyGroup, "simple": nil, "missing": kerr.GroupIDNotFound} {
		if got := deleted[group].Err; !errorIs(got, want) {
			t.Errorf("DeleteGroups %s: %v, want %v", group, got, want)
		}
	}
	fetched, err := adm.FetchOffsets(ctx(t), "simple")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup(topic, 0); ok && o.At != -1 {
		t.Errorf("offsets of a deleted group still read %+v", o.Offset)
	}
}

func errorIs(got, want error) bool {
	if want == nil {
		return got == nil
	}
	return errors.Is(got, want)
}

// The classic protocol's error codes, asked with raw requests.
func TestGroupProtocolErrors(t *testing.T) {
	b := startBroker(t, groupProps)
	// Kafka 3.8's versions: OffsetCommit v9 names topics (v10 uses ids).
	cl := b.client(t, kgo.MaxVersions(kversion.V3_8_0()))
	createTopic(t, b.admin(t), "e", 1, nil)

	join := func(memberID string, session int32) *kmsg.JoinGroupResponse {
		t.Helper()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = "g", memberID, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = session, 5000
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0}}}
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := join("", 500); r.ErrorCode != kerr.InvalidSessionTimeout.Code {
		t.Errorf("session below group.min.session.timeout.ms: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	first := join("", 5000)
	if first.ErrorCode != kerr.MemberIDRequired.Code || first.MemberID == "" {
		t.Fatalf("first join: %v member %q, want MEMBER_ID_REQUIRED with an id", kerr.ErrorForCode(first.ErrorCode), first.MemberID)
	}
	joined := join(first.MemberID, 5000)
	if joined.ErrorCode != 0 || joined.Generation != 1 || joined.LeaderID != first.MemberID || len(joined.Members) != 1 {
		t.Fatalf("second join: %+v", joined)
	}
	if r := join("unknown-member", 5000); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("join with an unknown member id: %v", kerr.ErrorForCode(r.ErrorCode))
	}

	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", first.MemberID, 1
	if r, err := hb.RequestWith(ctx(t), cl); err != nil || r.ErrorCode != 0 {
		t.Errorf("heartbeat while completing the rebalance: %v %v", err, r)
	}
	hb.Generation = 7
	if r, _ := hb.RequestWith(ctx(t), cl); r.ErrorCode != kerr.IllegalGeneration.Code {
		t.Errorf("heartbeat with a wrong generation: %v", kerr.ErrorForCode(r.ErrorCode))
	}

	// A commit before the leader synced is REBALANCE_IN_PROGRESS; after,
	// it needs the right generation.
	commit := func(gen int32, topic string) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = "g", first.MemberID, gen
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		rt.Partitions = []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if c := commit(1, "e"); c != kerr.RebalanceInProgress.Code {
		t.Errorf("commit before sync: %v", kerr.ErrorForCode(c))
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = "g", first.MemberID, 1
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: first.MemberID, MemberAssignment: []byte("plan")}}
	if r, err := sync.RequestWith(ctx(t), cl); err != nil || r.ErrorCode != 0 || string(r.MemberAssignment) != "plan" {
		t.Fatalf("sync: %v %+v", err, r)
	}
	if c := commit(1, "e"); c != 0 {
		t.Errorf("commit in the generation: %v", kerr.ErrorForCode(c))
	}
	if c := commit(2, "e"); c != kerr.IllegalGeneration.Code {
		t.Errorf("commit with a wrong generation: %v", kerr.ErrorForCode(c))
	}
	if c := commit(1, "no-such-topic"); c != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("commit to a missing topic: %v", kerr.ErrorForCode(c))
	}

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group = "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: first.MemberID}, {MemberID: "ghost"}}
	r, err := leave.RequestWith(ctx(t), cl)
	if err != nil || r.ErrorCode != 0 || r.Members[0].ErrorCode != 0 || r.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("leave: %v %+v", err, r)
	}
	described, _ := kadm.NewClient(cl).DescribeGroups(ctx(t), "g")
	if d := described["g"]; d.State != "Empty" {
		t.Errorf("after the last member left the group is %s", d.State)
	}
}

// ApiVersions advertises the KIP-848 APIs and finalizes group.version 1
// only while the consumer protocol is enabled, as Kafka 4 does.
func TestApiVersionsGroupProtocols(t *testing.T) {
	for _, tc := range []struct {
		protocols string
		want848   bool
	}{{"classic,consumer", true}, {"classic", false}} {
		b := startBroker(t, map[string]string{"group.coordinator.rebalance.protocols": tc.protocols})
		resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx(t), b.client(t))
		if err != nil {
			t.Fatal(err)
		}
		keys := map[int16]bool{}
		for _, k := range resp.ApiKeys {
			keys[k.ApiKey] = true
		}
		finalized := int16(0)
		for _, f := range resp.FinalizedFeatures {
			if f.Name == "group.version" {
				finalized = f.MaxVersionLevel
			}
		}
		if keys[68] != tc.want848 || keys[69] != tc.want848 || (finalized == 1) != tc.want848 {
			t.Errorf("%s: ConsumerGroupHeartbeat %v, ConsumerGroupDescribe %v, group.version %d", tc.protocols, keys[68], keys[69], finalized)
		}
		for _, k := range []int16{8, 9, 10, 11, 12, 13, 14, 15, 16, 42, 47} {
			if !keys[k] {
				t.Errorf("%s: %s not advertised", tc.protocols, kmsg.NameForKey(k))
			}
		}
	}
}
