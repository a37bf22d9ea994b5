package coordinator

import (
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/kvlog"
)

var (
	topicA = topicID{1}
	topicB = topicID{2}
)

func members(ids ...string) []assignmentMember {
	out := make([]assignmentMember, len(ids))
	for i, id := range ids {
		out[i] = assignmentMember{id: id, subscribed: []topicID{topicA, topicB}, current: assignment{}}
	}
	return out
}

// owners checks that every partition is assigned exactly once and returns
// each member's count.
func checkComplete(t *testing.T, out map[string]assignment, partitions map[topicID]int32) map[string]int {
	t.Helper()
	seen := make(map[topicID]map[int32]string)
	counts := make(map[string]int)
	for id, a := range out {
		for tp, ps := range a {
			for _, p := range ps {
				if seen[tp] == nil {
					seen[tp] = make(map[int32]string)
				}
				if other, ok := seen[tp][p]; ok {
					t.Fatalf("%x/%d assigned to %s and %s", tp[:1], p, other, id)
				}
				seen[tp][p] = id
				counts[id]++
			}
		}
	}
	for tp, n := range partitions {
		if int32(len(seen[tp])) != n {
			t.Fatalf("topic %x: %d of %d partitions assigned", tp[:1], len(seen[tp]), n)
		}
	}
	return counts
}

func TestUniformAssignorBalancesAndSticks(t *testing.T) {
	t.Parallel()
	partitions := map[topicID]int32{topicA: 7, topicB: 5}
	u := uniformAssignor{}

	ms := members("m1", "m2", "m3")
	first := u.assign(ms, partitions)
	counts := checkComplete(t, first, partitions)
	if mn, mx := minMax(counts, ms); mx-mn > 1 {
		t.Fatalf("unbalanced: %v", counts)
	}

	// A fourth member: only what balance needs moves, to the newcomer.
	ms = members("m1", "m2", "m3", "m4")
	for i := range ms[:3] {
		ms[i].current = first[ms[i].id]
	}
	second := u.assign(ms, partitions)
	counts = checkComplete(t, second, partitions)
	if mn, mx := minMax(counts, ms); mx-mn > 1 {
		t.Fatalf("unbalanced: %v", counts)
	}
	for _, m := range ms[:3] {
		for tp, ps := range second[m.id] {
			for _, p := range ps {
				if !first[m.id].contains(tp, p) {
					t.Errorf("%s gained %x/%d from another old member", m.id, tp[:1], p)
				}
			}
		}
	}
	if moved := 12 - (second["m1"].size() + second["m2"].size() + second["m3"].size()); moved != counts["m4"] || moved != 3 {
		t.Errorf("m4 got %d partitions, %d moved; want 3", counts["m4"], moved)
	}

	// m2 leaves: its partitions are spread, the others keep theirs.
	ms = []assignmentMember{ms[0], ms[2], ms[3]}
	for i := range ms {
		ms[i].current = second[ms[i].id]
	}
	third := u.assign(ms, partitions)
	counts = checkComplete(t, third, partitions)
	if mn, mx := minMax(counts, ms); mx-mn > 1 {
		t.Fatalf("unbalanced: %v", counts)
	}
	for _, m := range ms {
		for tp, ps := range second[m.id] {
			for _, p := range ps {
				if !third[m.id].contains(tp, p) {
					t.Errorf("%s lost %x/%d though balance did not need it", m.id, tp[:1], p)
				}
			}
		}
	}
}

func TestUniformAssignorHeterogeneous(t *testing.T) {
	t.Parallel()
	partitions := map[topicID]int32{topicA: 4, topicB: 4}
	ms := []assignmentMember{
		{id: "a", subscribed: []topicID{topicA}},
		{id: "b", subscribed: []topicID{topicA, topicB}},
		{id: "c", subscribed: []topicID{topicB}},
	}
	out := uniformAssignor{}.assign(ms, partitions)
	counts := checkComplete(t, out, partitions)
	if len(out["a"][topicB]) > 0 || len(out["c"][topicA]) > 0 {
		t.Fatalf("assigned outside a subscription: %v", out)
	}
	if mn, mx := minMax(counts, ms); mx-mn > 1 {
		t.Fatalf("unbalanced: %v", counts)
	}
}

func TestRangeAssignor(t *testing.T) {
	t.Parallel()
	partitions := map[topicID]int32{topicA: 5, topicB: 5}
	out := rangeAssignor{}.assign(members("m1", "m2"), partitions)
	checkComplete(t, out, partitions)
	// Co-partitioned: the same ranges of both topics to the same member,
	// the first member one more.
	for _, tp := range []topicID{topicA, topicB} {
		if !slices.Equal(out["m1"][tp], []int32{0, 1, 2}) || !slices.Equal(out["m2"][tp], []int32{3, 4}) {
			t.Fatalf("topic %x: m1 %v m2 %v", tp[:1], out["m1"][tp], out["m2"][tp])
		}
	}

	// Sticky: a third member takes from the ends of the others' ranges
	// only what their quota no longer allows.
	ms := members("m1", "m2", "m3")
	ms[0].current, ms[1].current = out["m1"], out["m2"]
	out2 := rangeAssignor{}.assign(ms, partitions)
	checkComplete(t, out2, partitions)
	for _, tp := range []topicID{topicA, topicB} {
		if !slices.Equal(out2["m1"][tp], []int32{0, 1}) || !slices.Equal(out2["m2"][tp], []int32{3, 4}) || !slices.Equal(out2["m3"][tp], []int32{2}) {
			t.Fatalf("topic %x: m1 %v m2 %v m3 %v", tp[:1], out2["m1"][tp], out2["m2"][tp], out2["m3"][tp])
		}
	}
}

func minMax(counts map[string]int, ms []assignmentMember) (int, int) {
	mn, mx := 1<<30, 0
	for _, m := range ms {
		mn, mx = min(mn, counts[m.id]), max(mx, counts[m.id])
	}
	return mn, mx
}

// fakeTopics is a TopicMetadata of fixed topics.
type fakeTopics map[string]topicMeta

func (f fakeTopics) Topic(name string) ([16]byte, int32, bool) {
	m, ok := f[name]
	return m.ID, m.Partitions, ok
}

func (f fakeTopics) TopicByID(id [16]byte) (string, int32, bool) {
	for name, m := range f {
		if m.ID == id {
			return name, m.Partitions, true
		}
	}
	return "", 0, false
}

func (f fakeTopics) TopicNames() []string {
	var out []string
	for name := range f {
		out = append(out, name)
	}
	return out
}

func openTestCoordinator(t *testing.T, path string, topics fakeTopics) *GroupCoordinator {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ConsumerHeartbeatInterval = 100 * time.Millisecond
	gc, err := NewGroupCoordinator(cfg, localDB{kvlog.Local(db), db}, topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gc.Close(); db.Close() })
	return gc
}

// localDB is the single-node DB, with its bbolt store at hand for a test
// that closes it.
type localDB struct {
	kvlog.DB
	bolt *bolt.DB
}

// heartbeater drives one member through ConsumerGroupHeartbeat.
type heartbeater struct {
	t     *testing.T
	gc    *GroupCoordinator
	id    string
	epoch int32
	owned assignment
}

func (h *heartbeater) beat(full bool) *kmsg.ConsumerGroupHeartbeatResponse {
	h.t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Version = 1
	req.Group, req.MemberID, req.MemberEpoch = "g", h.id, h.epoch
	req.RebalanceTimeoutMillis = -1
	if full || h.epoch == 0 {
		req.RebalanceTimeoutMillis = 60000
		req.SubscribedTopicNames = []string{"t"}
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		if h.epoch != 0 {
			for _, tp := range h.owned.topics() {
				req.Topics = append(req.Topics, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: tp, Partitions: h.owned[tp]})
			}
		}
	}
	resp := h.gc.ConsumerGroupHeartbeat(RequestContext{ClientID: h.id}, req)
	if resp.ErrorCode != 0 {
		h.t.Fatalf("%s heartbeat: %v %s", h.id, kerr.ErrorForCode(resp.ErrorCode), derefOr(resp.ErrorMessage, ""))
	}
	h.epoch = resp.MemberEpoch
	if resp.Assignment != nil {
		h.owned = make(assignment)
		for _, rt := range resp.Assignment.Topics {
			h.owned[rt.TopicID] = rt.Partitions
		}
	}
	return resp
}

// TestReconciliationRevokesBeforeReassigning: a partition moves to a new
// member only after its previous owner reported that it gave it up.
func TestReconciliationRevokesBeforeReassigning(t *testing.T) {
	t.Parallel()
	topics := fakeTopics{"t": {ID: topicA, Partitions: 4}}
	gc := openTestCoordinator(t, filepath.Join(t.TempDir(), "meta.db"), topics)

	m1 := &heartbeater{t: t, gc: gc, id: "m1"}
	m1.beat(true)
	if m1.epoch != 1 || m1.owned.size() != 4 {
		t.Fatalf("m1: epoch %d owns %v", m1.epoch, m1.owned)
	}
	m2 := &heartbeater{t: t, gc: gc, id: "m2"}
	m2.beat(true)
	if m2.epoch != 2 || m2.owned.size() != 0 {
		t.Fatalf("m2 got %v at epoch %d before m1 revoked", m2.owned, m2.epoch)
	}
	// m1 is told to revoke: it stays at its epoch with two partitions.
	m1.beat(false)
	if m1.epoch != 1 || m1.owned.size() != 2 {
		t.Fatalf("m1 after the new target: epoch %d owns %v", m1.epoch, m1.owned)
	}
	if got := gc.groups["g"].State(); got != "Reconciling" {
		t.Fatalf("state %s", got)
	}
	// m2 still gets nothing: m1 has not said it gave the partitions up.
	m2.beat(false)
	if m2.owned.size() != 0 {
		t.Fatalf("m2 got %v before m1 released it", m2.owned)
	}
	// m1 reports what it owns now: it moves to epoch 2 and m2 gets the rest.
	m1.beat(true)
	if m1.epoch != 2 || m1.owned.size() != 2 {
		t.Fatalf("m1 after revoking: epoch %d owns %v", m1.epoch, m1.owned)
	}
	m2.beat(true)
	if m2.owned.size() != 2 {
		t.Fatalf("m2 after m1 revoked: %v", m2.owned)
	}
	for _, p := range m2.owned[topicA] {
		if m1.owned.contains(topicA, p) {
			t.Fatalf("partition %d owned by both", p)
		}
	}
	if got := gc.groups["g"].State(); got != "Stable" {
		t.Fatalf("state %s", got)
	}
}

// TestConsumerGroupSurvivesRestart: members keep epochs and assignments
// across a coordinator restart and carry on heartbeating.
func TestConsumerGroupSurvivesRestart(t *testing.T) {
	t.Parallel()
	topics := fakeTopics{"t": {ID: topicA, Partitions: 2}}
	path := filepath.Join(t.TempDir(), "meta.db")
	gc := openTestCoordinator(t, path, topics)
	m1 := &heartbeater{t: t, gc: gc, id: "m1"}
	m1.beat(true)
	gc.Close()
	gc.store.db.(localDB).bolt.Close()

	gc2 := openTestCoordinator(t, path, topics)
	m1.gc = gc2
	resp := m1.beat(false)
	if resp.MemberEpoch != 1 || resp.Assignment != nil {
		t.Fatalf("after restart: epoch %d, assignment %v", resp.MemberEpoch, resp.Assignment)
	}
	if g := gc2.groups["g"].(*ConsumerGroup); g.groupEpoch != 1 || g.State() != "Stable" {
		t.Fatalf("after restart: group epoch %d state %s", g.groupEpoch, g.State())
	}
}

func TestConsumerGroupHeartbeatValidation(t *testing.T) {
	t.Parallel()
	gc := openTestCoordinator(t, filepath.Join(t.TempDir(), "meta.db"), fakeTopics{})
	for _, tc := range []struct {
		name string
		mod  func(*kmsg.ConsumerGroupHeartbeatRequest)
		want *kerr.Error
	}{
		{"no group", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.Group = "" }, kerr.InvalidRequest},
		{"no member id v1", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID = "" }, kerr.InvalidRequest},
		{"no rebalance timeout", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.RebalanceTimeoutMillis = -1 }, kerr.InvalidRequest},
		{"owned on join", func(r *kmsg.ConsumerGroupHeartbeatRequest) {
			r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{{TopicID: topicA, Partitions: []int32{0}}}
		}, kerr.InvalidRequest},
		{"bad epoch", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = -3 }, kerr.InvalidRequest},
		{"bad regex", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicRegex = kmsg.StringPtr("(") }, kerr.InvalidRegularExpression},
		{"unknown assignor", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.ServerAssignor = kmsg.StringPtr("x") }, kerr.UnsupportedAssignor},
		{"unknown member", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = 3 }, kerr.UnknownMemberID},
	} {
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Version = 1
		req.Group, req.MemberID, req.RebalanceTimeoutMillis = "v", "m", 1000
		req.SubscribedTopicNames, req.Topics = []string{"t"}, []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		tc.mod(req)
		if resp := gc.ConsumerGroupHeartbeat(RequestContext{}, req); resp.ErrorCode != tc.want.Code {
			t.Errorf("%s: got %v, want %v", tc.name, kerr.ErrorForCode(resp.ErrorCode), tc.want)
		}
	}
}

func TestRegexSubscription(t *testing.T) {
	t.Parallel()
	topics := fakeTopics{"orders": {ID: topicA, Partitions: 1}, "orders-v2": {ID: topicB, Partitions: 1}, "__consumer_offsets": {ID: topicID{3}, Partitions: 1}}
	gc := openTestCoordinator(t, filepath.Join(t.TempDir(), "meta.db"), topics)
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Version = 1
	req.Group, req.MemberID, req.RebalanceTimeoutMillis = "r", "m", 1000
	req.SubscribedTopicRegex, req.Topics = kmsg.StringPtr("orders|_offsets"), []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	resp := gc.ConsumerGroupHeartbeat(RequestContext{}, req)
	if resp.ErrorCode != 0 || resp.Assignment == nil || len(resp.Assignment.Topics) != 1 || resp.Assignment.Topics[0].TopicID != topicA {
		t.Fatalf("full match of orders only: %+v", resp)
	}
	// A topic created later that matches is assigned on the next heartbeat.
	topics["orders"] = topicMeta{ID: topicA, Partitions: 2}
	req.MemberEpoch, req.Topics = resp.MemberEpoch, []kmsg.ConsumerGroupHeartbeatRequestTopic{{TopicID: topicA, Partitions: []int32{0}}}
	resp = gc.ConsumerGroupHeartbeat(RequestContext{}, req)
	if resp.ErrorCode != 0 || resp.MemberEpoch != 2 || resp.Assignment == nil || len(resp.Assignment.Topics[0].Partitions) != 2 {
		t.Fatalf("added partition not assigned: %+v", resp)
	}
}

// TestConsumerGroupRebalanceMetrics: a consumer group rebalance runs from a
// group epoch bump to the group being Stable, and Config.OnRebalance hears
// of each one once, with its duration; one ending Empty is not reported.
func TestConsumerGroupRebalanceMetrics(t *testing.T) {
	t.Parallel()
	type event struct {
		typ string
		d   time.Duration
	}
	var mu sync.Mutex
	var events []event
	gc, _ := newTestCoordinator(t, t.TempDir(), func(c *Config) {
		c.OnRebalance = func(typ string, d time.Duration) {
			mu.Lock()
			events = append(events, event{typ, d})
			mu.Unlock()
		}
	})
	var clock atomic.Int64
	clock.Store(1_700_000_000_000)
	gc.mu.Lock()
	gc.now = func() time.Time { return time.UnixMilli(clock.Load()) }
	gc.mu.Unlock()
	tick := func() { clock.Add(1000) } // a second between heartbeats

	expect := func(what string, want ...time.Duration) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		var got []time.Duration
		for _, e := range events {
			if e.typ != "consumer" {
				t.Fatalf("%s: group type %q", what, e.typ)
			}
			got = append(got, e.d)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: rebalances %v, want %v", what, got, want)
		}
	}
	// settle heartbeats every member, reporting what it owns, until the
	// group is Stable.
	settle := func(hs ...*heartbeater) {
		t.Helper()
		for range 10 {
			if gc.stateOf("g") == "Stable" {
				return
			}
			for _, h := range hs {
				tick()
				h.beat(true)
			}
		}
		t.Fatalf("group not Stable but %s", gc.stateOf("g"))
	}

	// The first member joins: assigned and Stable in one heartbeat.
	m1 := &heartbeater{t: t, gc: gc, id: "m1"}
	m1.beat(true)
	expect("first member joined", 0)

	// A second member: the rebalance lasts until m1 revoked and m2 got
	// what m1 released.
	tick()
	m2 := &heartbeater{t: t, gc: gc, id: "m2"}
	m2.beat(true)
	if gc.stateOf("g") == "Stable" {
		t.Fatal("Stable before m1 revoked")
	}
	expect("second member joined, not reconciled", 0)
	settle(m1, m2)
	if m1.owned.size() != 2 || m2.owned.size() != 2 {
		t.Fatalf("m1 owns %v, m2 %v", m1.owned, m2.owned)
	}
	mu.Lock()
	d := events[len(events)-1].d
	mu.Unlock()
	if d <= 0 {
		t.Fatalf("second rebalance took %v", d)
	}
	expect("second member reconciled", 0, d)

	// m1 leaves: the rebalance ends when m2 has taken its partitions.
	tick()
	m1.epoch = leaveGroupMemberEpoch
	m1.beat(false)
	expect("m1 left, m2 not reconciled", 0, d)
	tick()
	m2.beat(true)
	if gc.stateOf("g") != "Stable" || m2.owned.size() != 4 {
		t.Fatalf("after m1 left: %s, m2 owns %v", gc.stateOf("g"), m2.owned)
	}
	expect("m2 took m1's partitions", 0, d, time.Second)

	// Two members join one after the other: the second bump extends the
	// rebalance the first started.
	tick()
	started := clock.Load()
	m3 := &heartbeater{t: t, gc: gc, id: "m3"}
	m3.beat(true)
	tick()
	m4 := &heartbeater{t: t, gc: gc, id: "m4"}
	m4.beat(true)
	settle(m2, m3, m4)
	expect("m3 and m4 joined", 0, d, time.Second, time.Duration(clock.Load()-started)*time.Millisecond)

	// Everyone leaves while a rebalance runs: the group is Empty and the
	// rebalance is not counted; the next join starts a new one.
	mu.Lock()
	before := slices.Clone(events)
	mu.Unlock()
	for _, h := range []*heartbeater{m2, m3, m4} {
		tick()
		h.epoch = leaveGroupMemberEpoch
		h.beat(false)
	}
	if s := gc.stateOf("g"); s != "Empty" {
		t.Fatalf("after everyone left: %s", s)
	}
	tick()
	m5 := &heartbeater{t: t, gc: gc, id: "m5"}
	m5.beat(true)
	var want []time.Duration
	for _, e := range before {
		want = append(want, e.d)
	}
	expect("everyone left, then m5 joined", append(want, 0)...)
}
