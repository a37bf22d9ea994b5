package coordinator

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	bolt "go.etcd.io/bbolt"
)

// txnCommitReq is a TxnOffsetCommit v3 of topic "t" by producer pid, as
// a producer outside group management sends it (generation -1).
func txnCommitReq(group string, pid int64, offsets map[int32]int64) *kmsg.TxnOffsetCommitRequest {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version = 3
	req.TransactionalID, req.Group, req.ProducerID = "tx", group, pid
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = "t"
	for _, p := range slices.Sorted(maps.Keys(offsets)) {
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, offsets[p]
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// txnCodes flattens a TxnOffsetCommit response's codes: "topic/partition" -> error.
func txnCodes(resp *kmsg.TxnOffsetCommitResponse) map[string]*kerr.Error {
	out := make(map[string]*kerr.Error)
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out[fmt.Sprintf("%s/%d", rt.Topic, rp.Partition)] = kerr.TypedErrorForCode(rp.ErrorCode)
		}
	}
	return out
}

func stage(t *testing.T, gc *GroupCoordinator, group string, pid int64, offsets map[int32]int64) {
	t.Helper()
	for tp, err := range txnCodes(gc.TxnOffsetCommit(txnCommitReq(group, pid, offsets))) {
		if err != nil {
			t.Fatalf("TxnOffsetCommit %s %s: %v", group, tp, err)
		}
	}
}

func complete(t *testing.T, gc *GroupCoordinator, pid int64, groups []string, commit bool) {
	t.Helper()
	if err := gc.CompleteTxnOffsets(pid, groups, commit); err != nil {
		t.Fatalf("CompleteTxnOffsets(%d, %v, %v): %v", pid, groups, commit, err)
	}
}

// fetched is one partition of an OffsetFetch answer.
type fetched struct {
	offset int64
	err    *kerr.Error
}

// fetch asks OffsetFetch v7 for partitions of topic "t", or for every
// committed offset when none are named.
func fetch(gc *GroupCoordinator, group string, requireStable bool, partitions ...int32) map[int32]fetched {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group, req.RequireStable = 7, group, requireStable
	if len(partitions) > 0 {
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: partitions}}
	}
	out := make(map[int32]fetched)
	for _, rt := range gc.OffsetFetch(req).Topics {
		for _, rp := range rt.Partitions {
			out[rp.Partition] = fetched{rp.Offset, kerr.TypedErrorForCode(rp.ErrorCode)}
		}
	}
	return out
}

func wantFetch(t *testing.T, what string, got map[int32]fetched, want map[int32]fetched) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

var unstable = kerr.UnstableOffsetCommit

// Staged offsets are invisible until the transaction commits; while they
// are pending, RequireStable gets UNSTABLE_OFFSET_COMMIT for exactly their
// partitions, and the fetch of all offsets lists committed partitions only.
func TestTxnOffsetsVisibleOnlyAfterCommit(t *testing.T) {
	gc, _ := newTestCoordinator(t, t.TempDir(), nil)
	gc.OffsetCommit(commitReq("g", map[int32]int64{1: 5}))
	stage(t, gc, "g", 7, map[int32]int64{0: 10})

	wantFetch(t, "pending, not stable", fetch(gc, "g", false, 0, 1), map[int32]fetched{0: {-1, nil}, 1: {5, nil}})
	wantFetch(t, "pending, stable", fetch(gc, "g", true, 0, 1), map[int32]fetched{0: {-1, unstable}, 1: {5, nil}})
	wantFetch(t, "pending, all, stable", fetch(gc, "g", true), map[int32]fetched{1: {5, nil}})

	complete(t, gc, 7, []string{"g"}, true)
	wantFetch(t, "committed, stable", fetch(gc, "g", true, 0, 1), map[int32]fetched{0: {10, nil}, 1: {5, nil}})
	wantFetch(t, "committed, all, stable", fetch(gc, "g", true), map[int32]fetched{0: {10, nil}, 1: {5, nil}})

	stage(t, gc, "g", 7, map[int32]int64{0: 20, 1: 30})
	wantFetch(t, "pending over committed, all, stable", fetch(gc, "g", true), map[int32]fetched{0: {-1, unstable}, 1: {-1, unstable}})
	wantFetch(t, "pending over committed, all", fetch(gc, "g", false), map[int32]fetched{0: {10, nil}, 1: {5, nil}})
}

// An aborted transaction's offsets are dropped; what was committed stays.
func TestTxnOffsetsDroppedOnAbort(t *testing.T) {
	gc, _ := newTestCoordinator(t, t.TempDir(), nil)
	gc.OffsetCommit(commitReq("g", map[int32]int64{0: 5}))
	stage(t, gc, "g", 7, map[int32]int64{0: 10, 1: 11})
	complete(t, gc, 7, []string{"g"}, false)
	wantFetch(t, "after abort", fetch(gc, "g", true, 0, 1), map[int32]fetched{0: {5, nil}, 1: {-1, nil}})
}

// A newer TxnOffsetCommit of the same producer and partition replaces the
// staged offset; completion only touches the groups it names.
func TestTxnOffsetCommitReplacesStaged(t *testing.T) {
	gc, _ := newTestCoordinator(t, t.TempDir(), nil)
	stage(t, gc, "g", 7, map[int32]int64{0: 10})
	stage(t, gc, "g", 7, map[int32]int64{0: 12})
	stage(t, gc, "other", 7, map[int32]int64{0: 99})
	complete(t, gc, 7, []string{"g"}, true)
	wantFetch(t, "g", fetch(gc, "g", true, 0), map[int32]fetched{0: {12, nil}})
	wantFetch(t, "other", fetch(gc, "other", true, 0), map[int32]fetched{0: {-1, unstable}})
}

// Completing twice, in either direction, or a producer that staged
// nothing, changes nothing and is not an error.
func TestCompleteTxnOffsetsIsIdempotent(t *testing.T) {
	gc, _ := newTestCoordinator(t, t.TempDir(), nil)
	complete(t, gc, 42, nil, true)
	complete(t, gc, 42, []string{"nope"}, false)
	stage(t, gc, "g", 7, map[int32]int64{0: 10})
	complete(t, gc, 7, []string{"g"}, true)
	complete(t, gc, 7, []string{"g"}, true)
	complete(t, gc, 7, nil, false)
	wantFetch(t, "after repeated completion", fetch(gc, "g", true, 0), map[int32]fetched{0: {10, nil}})
	if s := gc.stateOf("nope"); s != "missing" {
		t.Errorf("completing an unknown group created it: %s", s)
	}
}

// Staged offsets survive a restart between TxnOffsetCommit and the
// marker; after it, nothing is left on disk.
func TestTxnOffsetsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	gc, db := newTestCoordinator(t, dir, nil)
	stage(t, gc, "g", 7, map[int32]int64{0: 10, 1: 11})
	stage(t, gc, "h", 7, map[int32]int64{0: 1})
	stage(t, gc, "h", 8, map[int32]int64{0: 3})
	gc.Close()
	db.Close()

	gc, db = newTestCoordinator(t, dir, nil)
	if s := gc.stateOf("h"); s != "Empty" {
		t.Errorf("a group with only staged offsets reloads as %s", s)
	}
	wantFetch(t, "g reloaded", fetch(gc, "g", true, 0, 1), map[int32]fetched{0: {-1, unstable}, 1: {-1, unstable}})
	complete(t, gc, 7, nil, true) // every group of producer 7
	wantFetch(t, "g committed", fetch(gc, "g", true, 0, 1), map[int32]fetched{0: {10, nil}, 1: {11, nil}})
	wantFetch(t, "h committed by 7, staged by 8", fetch(gc, "h", true, 0), map[int32]fetched{0: {-1, unstable}})
	complete(t, gc, 8, []string{"h"}, false)
	gc.Close()
	db.Close()

	gc, db = newTestCoordinator(t, dir, nil)
	wantFetch(t, "g after second restart", fetch(gc, "g", true, 0, 1), map[int32]fetched{0: {10, nil}, 1: {11, nil}})
	wantFetch(t, "h after second restart", fetch(gc, "h", true, 0), map[int32]fetched{0: {1, nil}})
	err := db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(txnOffsetsBucket).Cursor().First(); k != nil {
			t.Errorf("staged offsets left on disk for group %q", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Kafka keeps the most recent of a mix of regular and transactional
// commits, by the position of their records: a transaction's offset is
// not materialised over a commit made after its TxnOffsetCommit.
func TestTxnOffsetsDoNotOverwriteNewerCommits(t *testing.T) {
	dir := t.TempDir()
	gc, db := newTestCoordinator(t, dir, nil)

	// A regular commit after the TxnOffsetCommit wins, but the partition
	// stays unstable until the marker.
	stage(t, gc, "a", 1, map[int32]int64{0: 10})
	gc.OffsetCommit(commitReq("a", map[int32]int64{0: 20}))
	wantFetch(t, "a before the marker", fetch(gc, "a", true, 0), map[int32]fetched{0: {-1, unstable}})
	complete(t, gc, 1, []string{"a"}, true)
	wantFetch(t, "a", fetch(gc, "a", true, 0), map[int32]fetched{0: {20, nil}})

	// A TxnOffsetCommit after the regular commit wins.
	gc.OffsetCommit(commitReq("b", map[int32]int64{0: 20}))
	stage(t, gc, "b", 1, map[int32]int64{0: 10})
	complete(t, gc, 1, []string{"b"}, true)
	wantFetch(t, "b", fetch(gc, "b", true, 0), map[int32]fetched{0: {10, nil}})

	// Restaging after the regular commit makes the transaction newer again.
	stage(t, gc, "c", 1, map[int32]int64{0: 10})
	gc.OffsetCommit(commitReq("c", map[int32]int64{0: 20}))
	stage(t, gc, "c", 1, map[int32]int64{0: 11})
	complete(t, gc, 1, []string{"c"}, true)
	wantFetch(t, "c", fetch(gc, "c", true, 0), map[int32]fetched{0: {11, nil}})

	// Two producers: the later TxnOffsetCommit wins whatever the order of
	// the markers.
	stage(t, gc, "d", 1, map[int32]int64{0: 10})
	stage(t, gc, "d", 2, map[int32]int64{0: 15})
	complete(t, gc, 2, []string{"d"}, true)
	complete(t, gc, 1, []string{"d"}, true)
	wantFetch(t, "d, later producer's marker first", fetch(gc, "d", true, 0), map[int32]fetched{0: {15, nil}})
	stage(t, gc, "e", 1, map[int32]int64{0: 10})
	stage(t, gc, "e", 2, map[int32]int64{0: 15})
	complete(t, gc, 1, []string{"e"}, true)
	complete(t, gc, 2, []string{"e"}, true)
	wantFetch(t, "e, earlier producer's marker first", fetch(gc, "e", true, 0), map[int32]fetched{0: {15, nil}})

	// The order survives a restart between the regular commit and the
	// marker.
	stage(t, gc, "f", 1, map[int32]int64{0: 10})
	gc.OffsetCommit(commitReq("f", map[int32]int64{0: 20}))
	stage(t, gc, "f", 2, map[int32]int64{0: 30})
	gc.Close()
	db.Close()
	gc, _ = newTestCoordinator(t, dir, nil)
	stage(t, gc, "f", 3, map[int32]int64{0: 25}) // staged after 2's, so newer
	complete(t, gc, 1, nil, true)
	wantFetch(t, "f after restart, 1 committed", fetch(gc, "f", false, 0), map[int32]fetched{0: {20, nil}})
	complete(t, gc, 2, nil, true)
	wantFetch(t, "f after restart, 2 committed", fetch(gc, "f", false, 0), map[int32]fetched{0: {30, nil}})
	complete(t, gc, 3, nil, true)
	wantFetch(t, "f after restart, 3 committed", fetch(gc, "f", true, 0), map[int32]fetched{0: {25, nil}})
}

// TxnOffsetCommit validates the group side as Kafka's
// validateTransactionalOffsetCommit does, and each partition on its own.
func TestTxnOffsetCommitValidation(t *testing.T) {
	gc, _ := newTestCoordinator(t, t.TempDir(), nil)
	join := joinReq("", 10*time.Second, 10*time.Second)
	join.Version, join.InstanceID = 5, kmsg.StringPtr("i1")
	j := gc.JoinGroup(RequestContext{ClientID: "c"}, join)
	if j.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(j.ErrorCode))
	}
	if s := gc.SyncGroup(syncReq(j.MemberID, j.Generation, map[string]string{j.MemberID: "a"})); s.ErrorCode != 0 {
		t.Fatalf("sync: %v", kerr.ErrorForCode(s.ErrorCode))
	}
	long := strings.Repeat("m", gc.cfg.OffsetMetadataMaxBytes+1)

	for _, tc := range []struct {
		name string
		mod  func(*kmsg.TxnOffsetCommitRequest)
		want map[string]*kerr.Error
	}{
		{"member at its generation", func(r *kmsg.TxnOffsetCommitRequest) {
			r.MemberID, r.Generation, r.InstanceID = j.MemberID, j.Generation, kmsg.StringPtr("i1")
		}, map[string]*kerr.Error{"t/0": nil}},
		{"unknown member", func(r *kmsg.TxnOffsetCommitRequest) {
			r.MemberID, r.Generation = "nobody", j.Generation
		}, map[string]*kerr.Error{"t/0": kerr.UnknownMemberID}},
		{"old generation", func(r *kmsg.TxnOffsetCommitRequest) {
			r.MemberID, r.Generation = j.MemberID, j.Generation-1
		}, map[string]*kerr.Error{"t/0": kerr.IllegalGeneration}},
		{"instance id of another member", func(r *kmsg.TxnOffsetCommitRequest) {
			r.MemberID, r.Generation, r.InstanceID = "nobody", j.Generation, kmsg.StringPtr("i1")
		}, map[string]*kerr.Error{"t/0": kerr.FencedInstanceID}},
		{"no member, no generation: not checked for a transaction", func(*kmsg.TxnOffsetCommitRequest) {},
			map[string]*kerr.Error{"t/0": nil}},
		{"v2 ignores member fields", func(r *kmsg.TxnOffsetCommitRequest) {
			r.Version, r.MemberID, r.Generation = 2, "nobody", 99
		}, map[string]*kerr.Error{"t/0": nil}},
		{"unknown group with a generation", func(r *kmsg.TxnOffsetCommitRequest) {
			r.Group, r.MemberID, r.Generation = "unknown", "m", 1
		}, map[string]*kerr.Error{"t/0": kerr.IllegalGeneration}},
		{"no group id", func(r *kmsg.TxnOffsetCommitRequest) { r.Group = "" },
			map[string]*kerr.Error{"t/0": kerr.InvalidGroupID}},
		{"per partition: unknown topic, metadata too large", func(r *kmsg.TxnOffsetCommitRequest) {
			r.Topics[0].Partitions = append(r.Topics[0].Partitions, kmsg.TxnOffsetCommitRequestTopicPartition{Partition: 1, Offset: 1, LeaderEpoch: -1, Metadata: &long})
			r.Topics = append(r.Topics, kmsg.TxnOffsetCommitRequestTopic{Topic: "x", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 2, LeaderEpoch: -1}}})
		}, map[string]*kerr.Error{"t/0": nil, "t/1": kerr.OffsetMetadataTooLarge, "x/2": kerr.UnknownTopicOrPartition}},
	} {
		req := txnCommitReq("g", 7, map[int32]int64{0: 1})
		tc.mod(req)
		if got := txnCodes(gc.TxnOffsetCommit(req)); !maps.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if s := gc.stateOf("unknown"); s != "missing" {
		t.Errorf("a refused commit created the group: %s", s)
	}

	// An unknown group without a generation becomes an empty classic
	// group, as a simple consumer's OffsetCommit makes one.
	stage(t, gc, "simple", 7, map[int32]int64{0: 1})
	if s := gc.stateOf("simple"); s != "Empty" {
		t.Errorf("simple group: %s", s)
	}
}

// A KIP-848 member commits transactionally at its member epoch; a stale
// epoch is ILLEGAL_GENERATION, as Kafka maps STALE_MEMBER_EPOCH for
// transactional commits.
func TestTxnOffsetCommitConsumerGroupMember(t *testing.T) {
	gc := openTestCoordinator(t, filepath.Join(t.TempDir(), "meta.db"), fakeTopics{"t": {ID: topicA, Partitions: 2}})
	m := &heartbeater{t: t, gc: gc, id: "m1"}
	m.beat(true)
	for _, tc := range []struct {
		name     string
		version  int16
		member   string
		epoch    int32
		wantCode *kerr.Error
	}{
		{"member at its epoch", 3, "m1", m.epoch, nil},
		{"stale epoch", 3, "m1", m.epoch + 1, kerr.IllegalGeneration},
		{"unknown member", 3, "m2", m.epoch, kerr.UnknownMemberID},
		{"v2: no member in a group with members", 2, "m1", m.epoch, kerr.UnknownMemberID},
	} {
		req := txnCommitReq("g", 7, map[int32]int64{0: 1})
		req.Version, req.MemberID, req.Generation = tc.version, tc.member, tc.epoch
		if got := txnCodes(gc.TxnOffsetCommit(req))["t/0"]; got != tc.wantCode {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.wantCode)
		}
	}
}

// DeleteGroups and OffsetDelete take staged offsets with the committed
// ones (Kafka's tombstones do); expiry leaves partitions with staged
// offsets, and groups with any, alone.
func TestTxnOffsetsGroupLifecycle(t *testing.T) {
	dir := t.TempDir()
	gc, db := newTestCoordinator(t, dir, nil)

	stage(t, gc, "deleted", 1, map[int32]int64{0: 10})
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"deleted"}
	if r := gc.DeleteGroups(del); r.Groups[0].ErrorCode != 0 {
		t.Fatalf("DeleteGroups: %v", kerr.ErrorForCode(r.Groups[0].ErrorCode))
	}
	wantFetch(t, "deleted group before the marker", fetch(gc, "deleted", true, 0), map[int32]fetched{0: {-1, nil}})
	complete(t, gc, 1, nil, true)
	wantFetch(t, "deleted group after the marker", fetch(gc, "deleted", true, 0), map[int32]fetched{0: {-1, nil}})

	gc.OffsetCommit(commitReq("od", map[int32]int64{0: 5}))
	stage(t, gc, "od", 2, map[int32]int64{0: 10, 1: 11})
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "od"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	if r := gc.OffsetDelete(od); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("OffsetDelete: %+v", r)
	}
	wantFetch(t, "after OffsetDelete", fetch(gc, "od", true, 0, 1), map[int32]fetched{0: {-1, nil}, 1: {-1, unstable}})

	gc.OffsetCommit(commitReq("exp", map[int32]int64{0: 1, 1: 1}))
	stage(t, gc, "exp", 3, map[int32]int64{0: 2})
	stage(t, gc, "staged-only", 3, map[int32]int64{0: 2})
	gc.mu.Lock()
	later := gc.now().Add(gc.cfg.OffsetsRetention + time.Minute)
	gc.now = func() time.Time { return later }
	gc.mu.Unlock()
	gc.expireOffsets()
	wantFetch(t, "expired around a staged offset", fetch(gc, "exp", false), map[int32]fetched{0: {1, nil}})
	if s := gc.stateOf("staged-only"); s != "Empty" {
		t.Errorf("a group with only staged offsets expired: %s", s)
	}
	gc.Close()
	db.Close()

	gc, _ = newTestCoordinator(t, dir, nil)
	wantFetch(t, "od after restart", fetch(gc, "od", true, 0, 1), map[int32]fetched{0: {-1, nil}, 1: {-1, unstable}})
	if s := gc.stateOf("deleted"); s != "missing" {
		t.Errorf("deleted group after restart: %s", s)
	}
	complete(t, gc, 2, nil, true)
	wantFetch(t, "od committed", fetch(gc, "od", true, 0, 1), map[int32]fetched{0: {-1, nil}, 1: {11, nil}})
	complete(t, gc, 3, nil, false)
	gc.mu.Lock()
	gc.now = func() time.Time { return later }
	gc.mu.Unlock()
	gc.expireOffsets()
	for _, id := range []string{"exp", "staged-only"} {
		if s := gc.stateOf(id); s != "missing" {
			t.Errorf("%s after the abort and expiry: %s", id, s)
		}
	}
}
