package coordinator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/kvlog"
)

// Transactional offsets (Kafka's OffsetMetadataManager
// pendingTransactionalOffsets / openTransactions and
// replayEndTransactionMarker).
//
// A TxnOffsetCommit stages offsets per (group, producer id). Staged offsets
// are invisible to OffsetFetch; while a partition has any, an OffsetFetch
// with RequireStable gets UNSTABLE_OFFSET_COMMIT for it. When the
// transaction ends, the transaction coordinator calls CompleteTxnOffsets:
// a commit moves the producer's staged offsets to the committed ones, an
// abort drops them.
//
// Kafka orders a mix of regular and transactional commits by the offset of
// their records in __consumer_offsets: a transaction's offset is
// materialised only if its TxnOffsetCommit record is newer than the record
// of the offset committed now. Here every staged offset carries seq, the
// order of TxnOffsetCommits, and a superseded flag set when a newer commit
// of the same partition lands first: a regular OffsetCommit supersedes
// every offset staged for the partition, a transaction's materialised
// offset those staged before it. A superseded offset still counts as
// pending (as in Kafka, until its marker), but its commit does nothing.

// pendingTxnOffset is one offset staged by a transaction.
type pendingTxnOffset struct {
	OffsetAndMetadata
	seq        uint64 // order of staging, Kafka's record offset of the TxnOffsetCommit
	superseded bool   // a newer commit of the partition landed: committing this does nothing
}

// txnOffsets is the coordinator's transactional offset state, under gc.mu.
type txnOffsets struct {
	// pending holds staged offsets by producer id, group and partition.
	pending map[int64]map[string]map[TopicPartition]pendingTxnOffset
	// open indexes the producers with offsets staged for a partition
	// (Kafka's OpenTransactions), for hasPendingTxnOffsets.
	open map[string]map[TopicPartition]map[int64]struct{}
	// seq is the last seq handed out.
	seq uint64
}

func newTxnOffsets() txnOffsets {
	return txnOffsets{
		pending: make(map[int64]map[string]map[TopicPartition]pendingTxnOffset),
		open:    make(map[string]map[TopicPartition]map[int64]struct{}),
	}
}

// put stages o, replacing what pid staged for the partition before.
func (t *txnOffsets) put(pid int64, group string, tp TopicPartition, o pendingTxnOffset) {
	byGroup := t.pending[pid]
	if byGroup == nil {
		byGroup = make(map[string]map[TopicPartition]pendingTxnOffset)
		t.pending[pid] = byGroup
	}
	offs := byGroup[group]
	if offs == nil {
		offs = make(map[TopicPartition]pendingTxnOffset)
		byGroup[group] = offs
	}
	offs[tp] = o
	byTP := t.open[group]
	if byTP == nil {
		byTP = make(map[TopicPartition]map[int64]struct{})
		t.open[group] = byTP
	}
	pids := byTP[tp]
	if pids == nil {
		pids = make(map[int64]struct{})
		byTP[tp] = pids
	}
	pids[pid] = struct{}{}
	t.seq = max(t.seq, o.seq)
}

// removeProducerGroup takes what pid staged for group out of the state and
// returns it.
func (t *txnOffsets) removeProducerGroup(pid int64, group string) map[TopicPartition]pendingTxnOffset {
	offs := t.pending[pid][group]
	if offs == nil {
		return nil
	}
	delete(t.pending[pid], group)
	if len(t.pending[pid]) == 0 {
		delete(t.pending, pid)
	}
	for tp := range offs {
		t.unindex(group, tp, pid)
	}
	return offs
}

// removePartition drops every producer's staged offset of group for tp
// (Kafka replaying an offset tombstone) and returns those producers.
func (t *txnOffsets) removePartition(group string, tp TopicPartition) []int64 {
	pids := slices.Sorted(maps.Keys(t.open[group][tp]))
	for _, pid := range pids {
		delete(t.pending[pid][group], tp)
		if len(t.pending[pid][group]) == 0 {
			delete(t.pending[pid], group)
		}
		if len(t.pending[pid]) == 0 {
			delete(t.pending, pid)
		}
		t.unindex(group, tp, pid)
	}
	return pids
}

// removeGroup drops every offset staged for group.
func (t *txnOffsets) removeGroup(group string) {
	for tp := range t.open[group] {
		t.removePartition(group, tp)
	}
}

func (t *txnOffsets) unindex(group string, tp TopicPartition, pid int64) {
	delete(t.open[group][tp], pid)
	if len(t.open[group][tp]) == 0 {
		delete(t.open[group], tp)
	}
	if len(t.open[group]) == 0 {
		delete(t.open, group)
	}
}

// supersede marks the offsets staged for group/tp before seq (all of them
// for a regular commit: seq = max) as superseded, and adds the changed
// entries to rewrite (producer id -> partition -> entry).
func (t *txnOffsets) supersede(group string, tp TopicPartition, seq uint64, rewrite map[int64]map[TopicPartition]pendingTxnOffset) {
	for pid := range t.open[group][tp] {
		o := t.pending[pid][group][tp]
		if o.superseded || o.seq >= seq {
			continue
		}
		o.superseded = true
		t.pending[pid][group][tp] = o
		if rewrite[pid] == nil {
			rewrite[pid] = make(map[TopicPartition]pendingTxnOffset)
		}
		rewrite[pid][tp] = o
	}
}

// TxnOffsetCommit stages offsets of a transaction (Kafka's
// OffsetMetadataManager.commitTransactionalOffset); the broker has already
// checked the transactional id, the producer and that the group is part of
// the transaction.
//   - an empty group id is INVALID_GROUP_ID;
//   - an unknown group with generation < 0 becomes an empty classic group
//     (a simple consumer), with a generation it is ILLEGAL_GENERATION;
//   - v3+ carry generation, member and instance id, which the group checks
//     as for a transactional commit: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
//     ILLEGAL_GENERATION (also for a KIP-848 member's stale epoch); v0-2
//     commit as generation -1 with no member, which a classic group does
//     not check;
//   - per partition: an unknown topic is UNKNOWN_TOPIC_OR_PARTITION,
//     metadata over offset.metadata.max.bytes OFFSET_METADATA_TOO_LARGE;
//   - the offsets stay pending until CompleteTxnOffsets; a newer commit of
//     the same producer and partition replaces the staged one;
//   - the response waits until the staged offsets are durable.
func (gc *GroupCoordinator) TxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	codes := make([][]int16, len(req.Topics))
	for i, rt := range req.Topics {
		codes[i] = make([]int16, len(rt.Partitions))
	}
	failAll := func(err *kerr.Error) {
		for i := range codes {
			for j := range codes[i] {
				codes[i][j] = err.Code
			}
		}
	}
	memberID, instanceID, generation := req.MemberID, req.InstanceID, req.Generation
	if req.Version < 3 { // no member fields: Kafka's defaults
		memberID, instanceID, generation = "", nil, -1
	}

	var res <-chan error
	gc.mu.Lock()
	switch {
	case gc.closed:
		failAll(kerr.CoordinatorNotAvailable)
	case req.Group == "":
		failAll(kerr.InvalidGroupID)
	default:
		if err := gc.validateCommit(req.Group, memberID, instanceID, generation, true, req.Version); err != nil {
			if err == kerr.StaleMemberEpoch {
				err = kerr.IllegalGeneration
			}
			failAll(err)
			break
		}
		now := gc.now().UnixMilli()
		staged := make(map[TopicPartition]pendingTxnOffset)
		for i := range req.Topics {
			rt := &req.Topics[i]
			name, err := gc.resolveTopic(rt.Topic, [16]byte{}, false)
			for j, rp := range rt.Partitions {
				switch {
				case err != nil:
					codes[i][j] = err.Code
				case rp.Metadata != nil && len(*rp.Metadata) > gc.cfg.OffsetMetadataMaxBytes:
					codes[i][j] = kerr.OffsetMetadataTooLarge.Code
				default:
					gc.txn.seq++
					o := pendingTxnOffset{
						OffsetAndMetadata: OffsetAndMetadata{Offset: rp.Offset, LeaderEpoch: rp.LeaderEpoch, CommitTimestamp: now, ExpireTimestamp: -1},
						seq:               gc.txn.seq,
					}
					if rp.Metadata != nil {
						o.Metadata = *rp.Metadata
					}
					if req.Version < 2 {
						o.LeaderEpoch = -1
					}
					staged[TopicPartition{name, rp.Partition}] = o
				}
			}
		}
		if len(staged) > 0 {
			if gc.groups[req.Group] == nil { // Kafka's replay creates the simple group
				gc.groups[req.Group] = newClassicGroup(gc, req.Group)
			}
			for tp, o := range staged {
				gc.txn.put(req.ProducerID, req.Group, tp, o)
			}
			res = gc.store.Enqueue(putTxnOffsets(req.Group, req.ProducerID, staged))
		}
	}
	gc.mu.Unlock()
	if res != nil {
		if err := gc.await(res); err != nil {
			for i := range codes {
				for j := range codes[i] {
					if codes[i][j] == 0 {
						codes[i][j] = err.Code
					}
				}
			}
		}
	}

	for i, rt := range req.Topics {
		st := kmsg.NewTxnOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for j, rp := range rt.Partitions {
			sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = codes[i][j]
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

var errCoordinatorClosed = errors.New("coordinator: closed")

// CompleteTxnOffsets applies the end of producerID's transaction to the
// offsets it staged in groups, or in every group when groups is empty
// (Kafka's OffsetMetadataManager.replayEndTransactionMarker): on commit
// they become the committed offsets, except where a newer commit of the
// partition landed first; on abort they are dropped. Everything happens in
// one bbolt transaction and CompleteTxnOffsets returns once it is durable.
// Completing a producer with nothing staged, or twice, is a no-op. An
// error means the outcome may not be durable: call again (after a
// restart, groups nil finds whatever is still staged).
func (gc *GroupCoordinator) CompleteTxnOffsets(producerID int64, groups []string, commit bool) error {
	gc.mu.Lock()
	if gc.closed {
		gc.mu.Unlock()
		return errCoordinatorClosed
	}
	if len(groups) == 0 {
		groups = slices.Sorted(maps.Keys(gc.txn.pending[producerID]))
	}
	var writes []func(tx *kvlog.Tx) error
	for _, id := range groups {
		staged := gc.txn.removeProducerGroup(producerID, id)
		if staged == nil {
			continue
		}
		writes = append(writes, deleteTxnOffsets(id, producerID))
		if !commit {
			gc.logger.Debug("aborted transactional offsets", "group", id, "producer_id", producerID, "partitions", len(staged))
			continue
		}
		committed := make(map[TopicPartition]OffsetAndMetadata, len(staged))
		rewrite := make(map[int64]map[TopicPartition]pendingTxnOffset)
		for tp, o := range staged {
			if o.superseded {
				gc.logger.Debug("skipping transactional offset older than the committed one", "group", id, "producer_id", producerID, "topic", tp.Topic, "partition", tp.Partition)
				continue
			}
			committed[tp] = o.OffsetAndMetadata
			gc.txn.supersede(id, tp, o.seq, rewrite)
		}
		if len(committed) > 0 {
			if gc.groups[id] == nil {
				gc.groups[id] = newClassicGroup(gc, id)
			}
			if gc.offsets[id] == nil {
				gc.offsets[id] = make(map[TopicPartition]OffsetAndMetadata, len(committed))
			}
			maps.Copy(gc.offsets[id], committed)
			writes = append(writes, putOffsets(id, committed))
		}
		for pid, offs := range rewrite {
			writes = append(writes, putTxnOffsets(id, pid, offs))
		}
		gc.logger.Debug("committed transactional offsets", "group", id, "producer_id", producerID, "partitions", len(committed))
	}
	// With nothing to change, a barrier still waits for whatever was
	// queued before, such as an earlier completion of the same producer.
	var write func(tx *kvlog.Tx) error
	if len(writes) > 0 {
		write = chainWrites(writes)
	}
	res := gc.store.Enqueue(write)
	gc.mu.Unlock()
	if err := <-res; err != nil {
		gc.logger.Error("transactional offsets not completed", "producer_id", producerID, "commit", commit, "err", err)
		return fmt.Errorf("coordinator: complete transactional offsets of producer %d: %w", producerID, err)
	}
	return nil
}

// hasPendingTxnOffsets reports whether an open transaction holds offsets
// of the group for tp (Kafka's hasPendingTransactionalOffsets); called
// with gc.mu held.
func (gc *GroupCoordinator) hasPendingTxnOffsets(group string, tp TopicPartition) bool {
	return len(gc.txn.open[group][tp]) > 0
}

// hasOpenTxns reports whether any transaction holds offsets of the group,
// which keeps the group from expiring; called with gc.mu held.
func (gc *GroupCoordinator) hasOpenTxns(group string) bool {
	return len(gc.txn.open[group]) > 0
}

// supersedeTxnOffsets marks what transactions staged for the partitions of
// a regular commit as older than it, and returns the write that records
// that, or nil; called with gc.mu held.
func (gc *GroupCoordinator) supersedeTxnOffsets(group string, commit map[TopicPartition]OffsetAndMetadata) func(tx *kvlog.Tx) error {
	if len(gc.txn.open[group]) == 0 {
		return nil
	}
	rewrite := make(map[int64]map[TopicPartition]pendingTxnOffset)
	for tp := range commit {
		gc.txn.supersede(group, tp, ^uint64(0), rewrite)
	}
	if len(rewrite) == 0 {
		return nil
	}
	var writes []func(tx *kvlog.Tx) error
	for pid, offs := range rewrite {
		writes = append(writes, putTxnOffsets(group, pid, offs))
	}
	return chainWrites(writes)
}

// dropTxnOffsets removes what transactions staged for tps of group, as an
// offset tombstone does in Kafka, and returns the write, or nil; called
// with gc.mu held.
func (gc *GroupCoordinator) dropTxnOffsets(group string, tps []TopicPartition) func(tx *kvlog.Tx) error {
	byPID := make(map[int64][]TopicPartition)
	for _, tp := range tps {
		for _, pid := range gc.txn.removePartition(group, tp) {
			byPID[pid] = append(byPID[pid], tp)
		}
	}
	if len(byPID) == 0 {
		return nil
	}
	return deleteTxnOffsetPartitions(group, byPID)
}

// installTxnOffsets installs staged offsets read back from the store; the
// groups they belong to exist afterwards, as Kafka's replay creates them.
// Called with gc.mu held.
func (gc *GroupCoordinator) installTxnOffsets(stored map[string]map[int64]map[TopicPartition]pendingTxnOffset) {
	for id, byPID := range stored {
		for pid, offs := range byPID {
			for tp, o := range offs {
				gc.txn.put(pid, id, tp, o)
			}
		}
		if gc.groups[id] == nil {
			gc.groups[id] = newClassicGroup(gc, id)
		}
	}
}

// On disk, bucket group-txn-offsets holds one bucket per group, which holds
// one bucket per producer id (8 bytes, big endian), which maps the
// partition's offsetKey to a pending value:
//
//	version 1 | seq uint64 | flags uint8 (bit 0: superseded) |
//	the committed offset value (encodeOffset)
var txnOffsetsBucket = []byte("group-txn-offsets")

const (
	pendingTxnValueVersion = 1
	pendingTxnSuperseded   = 1 << 0
	pendingTxnHeaderLen    = 10
)

func producerKey(pid int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(pid))
}

func parseProducerKey(k []byte) (int64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("bad producer id key %x", k)
	}
	return int64(binary.BigEndian.Uint64(k)), nil
}

func encodePendingTxnOffset(o pendingTxnOffset) []byte {
	v := make([]byte, pendingTxnHeaderLen, pendingTxnHeaderLen+29+len(o.Metadata))
	v[0] = pendingTxnValueVersion
	binary.BigEndian.PutUint64(v[1:], o.seq)
	if o.superseded {
		v[9] = pendingTxnSuperseded
	}
	return append(v, encodeOffset(o.OffsetAndMetadata)...)
}

func decodePendingTxnOffset(v []byte) (pendingTxnOffset, error) {
	if len(v) < pendingTxnHeaderLen || v[0] != pendingTxnValueVersion {
		return pendingTxnOffset{}, fmt.Errorf("pending offset value of %d bytes is not version %d", len(v), pendingTxnValueVersion)
	}
	if v[9]&^pendingTxnSuperseded != 0 {
		return pendingTxnOffset{}, fmt.Errorf("pending offset value has unknown flags %#x", v[9])
	}
	o, err := decodeOffset(v[pendingTxnHeaderLen:])
	if err != nil {
		return pendingTxnOffset{}, err
	}
	return pendingTxnOffset{OffsetAndMetadata: o, seq: binary.BigEndian.Uint64(v[1:]), superseded: v[9] != 0}, nil
}

// chainWrites applies writes in order, as one.
func chainWrites(writes []func(tx *kvlog.Tx) error) func(tx *kvlog.Tx) error {
	return func(tx *kvlog.Tx) error {
		for _, w := range writes {
			if err := w(tx); err != nil {
				return err
			}
		}
		return nil
	}
}

// txnOffsetsPath is the bucket of what producer pid staged for group.
func txnOffsetsPath(group string, pid int64) [][]byte {
	return [][]byte{txnOffsetsBucket, []byte(group), producerKey(pid)}
}

func putTxnOffsets(group string, pid int64, offs map[TopicPartition]pendingTxnOffset) func(tx *kvlog.Tx) error {
	vals := make(map[string][]byte, len(offs))
	for tp, o := range offs {
		vals[string(offsetKey(tp))] = encodePendingTxnOffset(o)
	}
	return func(tx *kvlog.Tx) error {
		path := txnOffsetsPath(group, pid)
		if len(vals) == 0 {
			// Put creates the buckets; staging nothing leaves them too.
			return tx.CreateBucket(path)
		}
		for k, v := range vals {
			if err := tx.Put(path, []byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}
}

// deleteTxnOffsets removes what pid staged for group.
func deleteTxnOffsets(group string, pid int64) func(tx *kvlog.Tx) error {
	return func(tx *kvlog.Tx) error {
		if tx.Bolt().Bucket(txnOffsetsBucket).Bucket([]byte(group)) == nil {
			return nil
		}
		if err := tx.DeleteBucket(txnOffsetsPath(group, pid)); err != nil {
			return err
		}
		return pruneTxnGroupBucket(tx, group)
	}
}

// deleteTxnOffsetPartitions removes staged offsets by producer.
func deleteTxnOffsetPartitions(group string, byPID map[int64][]TopicPartition) func(tx *kvlog.Tx) error {
	return func(tx *kvlog.Tx) error {
		gb := tx.Bolt().Bucket(txnOffsetsBucket).Bucket([]byte(group))
		if gb == nil {
			return nil
		}
		for pid, tps := range byPID {
			pb := gb.Bucket(producerKey(pid))
			if pb == nil {
				continue
			}
			path := txnOffsetsPath(group, pid)
			for _, tp := range tps {
				if err := tx.Delete(path, offsetKey(tp)); err != nil {
					return err
				}
			}
			if k, _ := pb.Cursor().First(); k == nil {
				if err := tx.DeleteBucket(path); err != nil {
					return err
				}
			}
		}
		return pruneTxnGroupBucket(tx, group)
	}
}

// deleteGroupTxnOffsets removes everything staged for group.
func deleteGroupTxnOffsets(tx *kvlog.Tx, group string) error {
	return tx.DeleteBucket([][]byte{txnOffsetsBucket, []byte(group)})
}

// pruneTxnGroupBucket removes a group's bucket once no producer has
// anything staged in it.
func pruneTxnGroupBucket(tx *kvlog.Tx, group string) error {
	gb := tx.Bolt().Bucket(txnOffsetsBucket).Bucket([]byte(group))
	if gb == nil {
		return nil
	}
	if k, _ := gb.Cursor().First(); k != nil {
		return nil
	}
	return tx.DeleteBucket([][]byte{txnOffsetsBucket, []byte(group)})
}

// loadTxnOffsets reads every staged offset: group -> producer id ->
// partition -> offset.
func (s *store) loadTxnOffsets() (map[string]map[int64]map[TopicPartition]pendingTxnOffset, error) {
	out := make(map[string]map[int64]map[TopicPartition]pendingTxnOffset)
	err := s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(txnOffsetsBucket)
		return root.ForEachBucket(func(g []byte) error {
			gb := root.Bucket(g)
			byPID := make(map[int64]map[TopicPartition]pendingTxnOffset)
			out[string(g)] = byPID
			return gb.ForEachBucket(func(p []byte) error {
				pid, err := parseProducerKey(p)
				if err != nil {
					return fmt.Errorf("group %q: %w", g, err)
				}
				offs := make(map[TopicPartition]pendingTxnOffset)
				byPID[pid] = offs
				return gb.Bucket(p).ForEach(func(k, v []byte) error {
					tp, err := parseOffsetKey(k)
					if err != nil {
						return err
					}
					o, err := decodePendingTxnOffset(v)
					if err != nil {
						return fmt.Errorf("group %q producer %d %s/%d: %w", g, pid, tp.Topic, tp.Partition, err)
					}
					offs[tp] = o
					return nil
				})
			})
		})
	})
	return out, err
}
