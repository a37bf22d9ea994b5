package coordinator

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/kvlog"
	"github.com/kbroker/kbroker/internal/kvlog/kvlogtest"
)

// Every write the coordinator makes is captured: the changes of every
// committed transaction, replayed in order onto an empty store, give the
// store the coordinator wrote, bucket for bucket and byte for byte. This
// is what a follower that applies the replicated log ends up with.
func TestEveryWriteIsCaptured(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rec := &kvlogtest.Recorder{DB: db}
	topics := fakeTopics{"t": {ID: topicA, Partitions: 4}}
	open := func() *GroupCoordinator {
		cfg := DefaultConfig()
		cfg.GroupInitialRebalanceDelay = 0
		cfg.ConsumerHeartbeatInterval = 100 * time.Millisecond
		gc, err := NewGroupCoordinator(cfg, rec, topics, nil)
		if err != nil {
			t.Fatal(err)
		}
		return gc
	}
	gc := open()

	// A classic group: join, sync (its metadata is persisted), commit.
	join := joinReq("", 10*time.Second, 10*time.Second)
	join.Group = "classic"
	j := gc.JoinGroup(RequestContext{ClientID: "c"}, join)
	if j.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(j.ErrorCode))
	}
	sync := syncReq(j.MemberID, j.Generation, map[string]string{j.MemberID: "a"})
	sync.Group = "classic"
	if s := gc.SyncGroup(sync); s.ErrorCode != 0 {
		t.Fatalf("sync: %v", kerr.ErrorForCode(s.ErrorCode))
	}
	gc.OffsetCommit(commitReq("classic", map[int32]int64{0: 1, 1: 2, 2: 3}))

	// A consumer group (KIP-848) member that joins and gets its partitions.
	m1 := &heartbeater{t: t, gc: gc, id: "m1"}
	m1.beat(true)
	m1.beat(true)

	// Plain commits, recommits, and an empty group's offsets.
	gc.OffsetCommit(commitReq("plain", map[int32]int64{0: 5, 1: 6}))
	gc.OffsetCommit(commitReq("plain", map[int32]int64{0: 7}))
	gc.OffsetCommit(commitReq("empty", map[int32]int64{}))

	// Transactional offsets: committed, aborted, superseded by a regular
	// commit, replaced by a restage, and of two producers.
	stage(t, gc, "tx", 1, map[int32]int64{0: 10, 1: 11})
	stage(t, gc, "tx", 2, map[int32]int64{2: 12})
	gc.OffsetCommit(commitReq("tx", map[int32]int64{1: 20}))
	stage(t, gc, "tx", 2, map[int32]int64{2: 13, 3: 14})
	complete(t, gc, 1, []string{"tx"}, true)
	stage(t, gc, "aborted", 3, map[int32]int64{0: 1})
	complete(t, gc, 3, nil, false)
	stage(t, gc, "open", 4, map[int32]int64{0: 1, 1: 2})
	stage(t, gc, "open", 5, map[int32]int64{0: 3})

	// OffsetDelete of a committed and a staged partition.
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "plain"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 1}}}}
	if r := gc.OffsetDelete(od); r.ErrorCode != 0 {
		t.Fatalf("OffsetDelete: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	od.Group = "open"
	od.Topics[0].Partitions[0].Partition = 0
	gc.OffsetDelete(od)

	// A restart in between: the new coordinator's start-up writes are
	// captured too.
	gc.Close()
	gc = open()
	m1.gc = gc
	m1.beat(false)

	// DeleteGroups, with something staged.
	stage(t, gc, "doomed", 6, map[int32]int64{0: 1})
	gc.OffsetCommit(commitReq("doomed", map[int32]int64{1: 1}))
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"doomed"}
	for _, g := range gc.DeleteGroups(del).Groups {
		if g.ErrorCode != 0 {
			t.Fatalf("DeleteGroups %s: %v", g.Group, kerr.ErrorForCode(g.ErrorCode))
		}
	}
	complete(t, gc, 6, nil, true)

	// Offset expiry, around what is still staged.
	gc.OffsetCommit(commitReq("exp", map[int32]int64{0: 1, 1: 1}))
	stage(t, gc, "exp", 7, map[int32]int64{0: 2})
	gc.mu.Lock()
	later := gc.now().Add(gc.cfg.OffsetsRetention + time.Minute)
	gc.now = func() time.Time { return later }
	gc.mu.Unlock()
	gc.expireOffsets()
	complete(t, gc, 7, nil, false)
	gc.expireOffsets()
	gc.Close()

	changes, commits := rec.Changes()
	t.Logf("%d transactions, %d changes", commits, len(changes))
	replayed := kvlogtest.Replay(t, changes)
	kvlogtest.SameContents(t, db, replayed)

	// And a coordinator started from the replayed store answers as one
	// started from the original.
	orig := open()
	defer orig.Close()
	gc2, err := NewGroupCoordinator(DefaultConfig(), kvlog.Local(replayed), topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gc2.Close()
	for _, g := range []string{"classic", "g", "plain", "tx", "aborted", "open", "doomed", "exp"} {
		if a, b := orig.stateOf(g), gc2.stateOf(g); a != b {
			t.Errorf("group %s: %s, replayed %s", g, a, b)
		}
		wantFetch(t, g+" on the replayed store", fetch(gc2, g, true, 0, 1, 2, 3), fetch(orig, g, true, 0, 1, 2, 3))
	}
	if got := fetch(gc2, "open", true, 1); got[1].err != unstable {
		t.Errorf("open/1 on the replayed store: %+v, want unstable", got[1])
	}
}
