package coordinator

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/kvlog"
)

// topicTable is a fixed topic table.
type topicTable map[string]int32

func (f topicTable) Topic(name string) ([16]byte, int32, bool) {
	n, ok := f[name]
	return [16]byte{byte(len(name))}, n, ok
}

func (f topicTable) TopicByID(id [16]byte) (string, int32, bool) {
	for name, n := range f {
		if byte(len(name)) == id[0] {
			return name, n, true
		}
	}
	return "", 0, false
}

func (f topicTable) TopicNames() []string {
	var out []string
	for n := range f {
		out = append(out, n)
	}
	return out
}

func openDB(t testing.TB, dir string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// newTestCoordinator starts a coordinator on a bbolt file in dir with
// timeouts short enough for tests.
func newTestCoordinator(t testing.TB, dir string, tune func(*Config)) (*GroupCoordinator, *bolt.DB) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.GroupInitialRebalanceDelay = 0
	cfg.GroupMinSessionTimeout = time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	db := openDB(t, dir)
	gc, err := NewGroupCoordinator(cfg, kvlog.Local(db), topicTable{"t": 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gc.Close()
		db.Close()
	})
	return gc, db
}

func joinReq(member string, session, rebalance time.Duration) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 3 // before KIP-394: no MEMBER_ID_REQUIRED round trip
	req.Group, req.MemberID, req.ProtocolType = "g", member, "consumer"
	req.SessionTimeoutMillis = int32(session.Milliseconds())
	req.RebalanceTimeoutMillis = int32(rebalance.Milliseconds())
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("m")}}
	return req
}

func syncReq(member string, gen int32, plan map[string]string) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.Generation = "g", member, gen
	for m, a := range plan {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: m, MemberAssignment: []byte(a)})
	}
	return req
}

func (gc *GroupCoordinator) stateOf(id string) string {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if g := gc.groups[id]; g != nil {
		return g.State()
	}
	return "missing"
}

// eventually polls cond for up to 5 s: for outcomes of timers.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A member that stops heartbeating is removed when its session times out,
// and the group goes back to Empty.
func TestSessionTimeoutRemovesMember(t *testing.T) {
	gc, _ := newTestCoordinator(t, t.TempDir(), nil)
	j := gc.JoinGroup(RequestContext{ClientID: "c"}, joinReq("", 50*time.Millisecond, time.Second))
	if j.ErrorCode != 0 || j.Generation != 1 {
		t.Fatalf("join: %+v", j)
	}
	if s := gc.SyncGroup(syncReq(j.MemberID, 1, map[string]string{j.MemberID: "a"})); s.ErrorCode != 0 {
		t.Fatalf("sync: %v", kerr.ErrorForCode(s.ErrorCode))
	}
	eventually(t, "the silent member expires", func() bool { return gc.stateOf("g") == "Empty" })
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", j.MemberID, 1
	if r := gc.Heartbeat(hb); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("heartbeat of an expired member: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}

// During group.initial.rebalance.delay.ms the first rebalance waits for
// more members, so members starting together land in one generation.
func TestInitialRebalanceDelayGathersMembers(t *testing.T) {
	gc, _ := newTestCoordinator(t, t.TempDir(), func(c *Config) { c.GroupInitialRebalanceDelay = 100 * time.Millisecond })
	var wg sync.WaitGroup
	resps := make([]*kmsg.JoinGroupResponse, 3)
	for i := range resps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i] = gc.JoinGroup(RequestContext{ClientID: "c"}, joinReq("", time.Second, time.Second))
		}()
	}
	wg.Wait()
	leaders := 0
	for _, r := range resps {
		if r.ErrorCode != 0 || r.Generation != 1 {
			t.Errorf("join: error %v generation %d, want generation 1", kerr.ErrorForCode(r.ErrorCode), r.Generation)
		}
		if r.MemberID == r.LeaderID {
			leaders++
			if len(r.Members) != 3 {
				t.Errorf("leader sees %d members", len(r.Members))
			}
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders", leaders)
	}
}

// A dynamic member that does not rejoin within the rebalance timeout is
// dropped from the next generation.
func TestRebalanceTimeoutDropsMemberThatDoesNotRejoin(t *testing.T) {
	gc, _ := newTestCoordinator(t, t.TempDir(), nil)
	ctx := RequestContext{ClientID: "c"}
	a := gc.JoinGroup(ctx, joinReq("", 10*time.Second, 100*time.Millisecond))
	gc.SyncGroup(syncReq(a.MemberID, a.Generation, nil))
	var b *kmsg.JoinGroupResponse
	done := make(chan struct{})
	go func() { // b's join starts a rebalance that waits for a
		defer close(done)
		b = gc.JoinGroup(ctx, joinReq("", 10*time.Second, 100*time.Millisecond))
	}()
	eventually(t, "the rebalance starts", func() bool { return gc.stateOf("g") == "PreparingRebalance" })
	a2 := gc.JoinGroup(ctx, joinReq(a.MemberID, 10*time.Second, 100*time.Millisecond))
	<-done
	if a2.Generation != 2 || b.Generation != 2 {
		t.Fatalf("generations %d and %d, want 2", a2.Generation, b.Generation)
	}
	// b rejoins with a new subscription, which rebalances; a does not
	// rejoin and is dropped when the rebalance times out.
	gc.SyncGroup(syncReq(a2.LeaderID, 2, nil))
	rejoin := joinReq(b.MemberID, 10*time.Second, 100*time.Millisecond)
	rejoin.Protocols[0].Metadata = []byte("new subscription")
	b2 := gc.JoinGroup(ctx, rejoin)
	if b2.Generation != 3 || b2.LeaderID != b.MemberID || len(b2.Members) != 1 {
		t.Errorf("after the timeout: generation %d leader %s members %d", b2.Generation, b2.LeaderID, len(b2.Members))
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", a.MemberID, 2
	if r := gc.Heartbeat(hb); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("the dropped member's heartbeat: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}

func commitReq(group string, offsets map[int32]int64) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 9
	req.Group, req.Generation = group, -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	for p, o := range offsets {
		rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitRequestTopicPartition{Partition: p, Offset: o, LeaderEpoch: -1})
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// Offsets of a group without members expire offsets.retention.minutes
// after their commit; the group goes with them, on disk too.
func TestOffsetsExpire(t *testing.T) {
	dir := t.TempDir()
	gc, db := newTestCoordinator(t, dir, nil)
	if r := gc.OffsetCommit(commitReq("old", map[int32]int64{0: 1, 1: 2})); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
	}
	gc.OffsetCommit(commitReq("fresh", map[int32]int64{0: 7}))
	gc.mu.Lock()
	for tp, o := range gc.offsets["old"] {
		o.CommitTimestamp -= gc.cfg.OffsetsRetention.Milliseconds()
		gc.offsets["old"][tp] = o
	}
	gc.mu.Unlock()
	gc.expireOffsets()
	if s := gc.stateOf("old"); s != "missing" {
		t.Errorf("expired group is %s", s)
	}
	if s := gc.stateOf("fresh"); s != "Empty" {
		t.Errorf("fresh group is %s", s)
	}
	gc.Close()
	db.Close()

	gc2, _ := newTestCoordinator(t, dir, nil)
	if s := gc2.stateOf("old"); s != "missing" {
		t.Errorf("after reload the expired group is %s", s)
	}
	if o := gc2.offsets["fresh"][TopicPartition{"t", 0}]; o.Offset != 7 {
		t.Errorf("after reload fresh/t/0 = %+v", o)
	}
}

// Concurrent commits all land, whatever the batching.
func TestConcurrentCommitsAreDurable(t *testing.T) {
	dir := t.TempDir()
	gc, db := newTestCoordinator(t, dir, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				gc.OffsetCommit(commitReq("g"+string(rune('a'+i)), map[int32]int64{0: int64(j)}))
			}
		}()
	}
	wg.Wait()
	gc.Close()
	db.Close()
	gc2, _ := newTestCoordinator(t, dir, nil)
	for i := range 8 {
		if o := gc2.offsets["g"+string(rune('a'+i))][TopicPartition{"t", 0}]; o.Offset != 49 {
			t.Errorf("group %d: %+v", i, o)
		}
	}
}

// A new member whose join (with the id it was handed by
// MEMBER_ID_REQUIRED) is the last one the join phase waits for gets its
// response: the join completes while its own request is being handled.
func TestLastJoinerCompletingTheJoinPhaseIsAnswered(t *testing.T) {
	gc, _ := newTestCoordinator(t, t.TempDir(), nil)
	ctx := RequestContext{ClientID: "c"}
	a := gc.JoinGroup(ctx, joinReq("", 10*time.Second, 5*time.Second))
	gc.SyncGroup(syncReq(a.MemberID, a.Generation, nil))

	first := joinReq("", 10*time.Second, 5*time.Second)
	first.Version = 4
	pending := gc.JoinGroup(ctx, first)
	if pending.ErrorCode != kerr.MemberIDRequired.Code {
		t.Fatalf("first join: %v", kerr.ErrorForCode(pending.ErrorCode))
	}
	aDone := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { aDone <- gc.JoinGroup(ctx, joinReq(a.MemberID, 10*time.Second, 5*time.Second)) }() // the leader rejoins: a rebalance
	eventually(t, "the rebalance starts", func() bool { return gc.stateOf("g") == "PreparingRebalance" })

	second := joinReq(pending.MemberID, 10*time.Second, 5*time.Second)
	second.Version = 4
	done := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { done <- gc.JoinGroup(ctx, second) }()
	select {
	case r := <-done:
		if r.ErrorCode != 0 || r.Generation != 2 {
			t.Errorf("last joiner: %v generation %d", kerr.ErrorForCode(r.ErrorCode), r.Generation)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the member whose join completed the join phase was never answered")
	}
	if r := <-aDone; r.Generation != 2 || len(r.Members) != 2 {
		t.Errorf("leader: generation %d with %d members", r.Generation, len(r.Members))
	}
}

// OffsetCommit v2-4 may carry its own retention time, which replaces
// offsets.retention.minutes for what it commits.
func TestOffsetCommitRetentionTime(t *testing.T) {
	gc, _ := newTestCoordinator(t, t.TempDir(), nil)
	short := commitReq("short", map[int32]int64{0: 1})
	short.Version, short.RetentionTimeMillis = 4, 60_000
	gc.OffsetCommit(short)
	gc.OffsetCommit(commitReq("default", map[int32]int64{0: 1}))

	gc.mu.Lock()
	later := gc.now().Add(2 * time.Minute)
	gc.now = func() time.Time { return later }
	gc.mu.Unlock()
	gc.expireOffsets()
	if s := gc.stateOf("short"); s != "missing" {
		t.Errorf("a group whose offsets outlived their own retention is %s", s)
	}
	if s := gc.stateOf("default"); s != "Empty" {
		t.Errorf("a group under offsets.retention.minutes is %s", s)
	}
}
