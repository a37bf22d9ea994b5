package controller

import (
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Leader elections on request and partition reassignments: the pure
// rules (Kafka's ReplicationControlManager.electLeaders,
// alterPartitionReassignments and listPartitionReassignments, with
// PartitionChangeBuilder and PartitionReassignmentReplicas /
// PartitionReassignmentRevert), table tested on images.
//
// A reassignment runs in three steps, each a PartitionChange record:
//
//  1. start: Replicas becomes the target followed by the current replicas
//     not in it, with AddingReplicas (target − current) and
//     RemovingReplicas (current − target). The brokers reconcile: new
//     replicas start following the leader.
//  2. the leader adds the caught-up new replicas to the ISR through
//     AlterPartition.
//  3. complete: as soon as the ISR holds every target replica (checked in
//     every record this file and AlterPartition plan, so the completing
//     change is part of the record that makes it possible), Replicas
//     becomes the target, the ISR loses the removed replicas, a removed
//     leader gives way to the first target replica in the ISR, and the
//     leader epoch grows (removed replicas are fenced).
//
// A null target cancels (reverts to the replicas before the reassignment).

// ElectionType is ElectLeadersRequest.ElectionType.
type ElectionType int8

// Election types (Kafka's ElectionType).
const (
	ElectPreferred ElectionType = 0
	ElectUnclean   ElectionType = 1
)

// TopicPartitions names some partitions of a topic.
type TopicPartitions struct {
	Topic      string
	Partitions []int32
}

// PartitionResult is one partition's outcome of an admin operation: nil,
// or a *kerr.Error wrapped with a message.
type PartitionResult struct {
	Topic     string
	Partition int32
	Err       error
}

// Reassignment asks for one partition's new replica set; nil Replicas
// cancels the ongoing reassignment.
type Reassignment struct {
	Topic     string
	Partition int32
	Replicas  []int32
}

// OngoingReassignment is a partition being reassigned.
type OngoingReassignment struct {
	Topic                                      string
	Partition                                  int32
	Replicas, AddingReplicas, RemovingReplicas []int32
}

// planner accumulates the records of one request, each planned on the
// image its predecessors leave, so that a partition named twice is
// changed twice in order rather than twice from the same state.
type planner struct {
	img  *Image
	recs []record
}

func (pl *planner) add(r record) error {
	n, err := pl.img.apply(pl.img.Offset, []record{r})
	if err != nil {
		return kerrf(kerr.UnknownServerError, "planned record does not apply: %v", err)
	}
	pl.img = n
	pl.recs = append(pl.recs, r)
	return nil
}

// lookupPartition finds topic's partition in img (UNKNOWN_TOPIC_OR_PARTITION).
func lookupPartition(img *Image, topic string, partition int32) (*TopicImage, PartitionRegistration, error) {
	t, ok := img.Topics[topic]
	if !ok {
		return nil, PartitionRegistration{}, kerrf(kerr.UnknownTopicOrPartition, "no such topic as %s", topic)
	}
	if partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, PartitionRegistration{}, kerrf(kerr.UnknownTopicOrPartition, "no such partition as %s-%d", topic, partition)
	}
	return t, t.Partitions[partition], nil
}

// finishChange completes a PartitionChangeBuilder step from old to n: the
// leader epoch grows when the leader changes or a replica leaves (Kafka's
// triggerLeaderEpochBumpForReplicaReassignmentIfNeeded fences removed
// replicas), the partition epoch with any change. It reports whether
// there is a change at all.
func finishChange(old, n PartitionRegistration) (PartitionRegistration, bool) {
	n.LeaderEpoch, n.PartitionEpoch = old.LeaderEpoch, old.PartitionEpoch
	if n.equal(old) {
		return old, false
	}
	removed := slices.ContainsFunc(old.Replicas, func(id int32) bool { return !slices.Contains(n.Replicas, id) })
	if n.Leader != old.Leader || removed {
		n.LeaderEpoch++
	}
	n.PartitionEpoch++
	return n, true
}

// maybeCompleteReassignment is PartitionReassignmentReplicas.
// maybeCompleteReassignment: once the ISR holds every target replica,
// Replicas becomes the target (in its order), the ISR drops the removed
// replicas and a removed leader gives way to the first target replica in
// the ISR that is eligible. With no such replica the reassignment waits.
// Epochs are left to finishChange.
func maybeCompleteReassignment(p PartitionRegistration, eligible func(int32) bool) PartitionRegistration {
	if !p.Reassigning() {
		return p
	}
	target := p.TargetReplicas()
	for _, id := range target {
		if !slices.Contains(p.ISR, id) {
			return p
		}
	}
	leader := p.Leader
	if leader != -1 && !slices.Contains(target, leader) {
		leader = -1
		for _, id := range target {
			if eligible(id) {
				leader = id
				break
			}
		}
		if leader == -1 {
			return p
		}
	}
	n := p.clone()
	n.Replicas = target
	n.ISR = slices.DeleteFunc(n.ISR, func(id int32) bool { return !slices.Contains(target, id) })
	n.Leader = leader
	n.AddingReplicas, n.RemovingReplicas = nil, nil
	return n
}

// electLeaderRecord is ReplicationControlManager.electLeader for one
// partition. PREFERRED: the first replica leads if it is in the ISR and
// eligible (ELECTION_NOT_NEEDED when it already leads,
// PREFERRED_LEADER_NOT_AVAILABLE otherwise). UNCLEAN: only a leaderless
// partition gets a leader, the first ISR member that is eligible or else
// the first eligible replica, which becomes the whole ISR
// (ELECTION_NOT_NEEDED with a leader, ELIGIBLE_LEADERS_NOT_AVAILABLE with
// no eligible replica).
func electLeaderRecord(img *Image, topic string, partition int32, typ ElectionType) (*record, error) {
	t, p, err := lookupPartition(img, topic, partition)
	if err != nil {
		return nil, err
	}
	n := p.clone()
	switch typ {
	case ElectPreferred:
		pref := p.Replicas[0]
		if p.Leader == pref {
			return nil, kerrf(kerr.ElectionNotNeeded, "%s-%d is led by its preferred replica %d", topic, partition, pref)
		}
		if !slices.Contains(p.ISR, pref) || !img.eligible(pref) {
			return nil, kerrf(kerr.PreferredLeaderNotAvailable, "the preferred leader %d of %s-%d is not in the ISR %v or not available", pref, topic, partition, p.ISR)
		}
		n.Leader = pref
	case ElectUnclean:
		if p.Leader != -1 {
			return nil, kerrf(kerr.ElectionNotNeeded, "%s-%d has leader %d", topic, partition, p.Leader)
		}
		for _, id := range p.Replicas {
			if slices.Contains(p.ISR, id) && img.eligible(id) {
				n.Leader = id
				break
			}
		}
		if n.Leader == -1 {
			for _, id := range p.Replicas {
				if img.eligible(id) {
					n.Leader, n.ISR = id, []int32{id}
					break
				}
			}
		}
		if n.Leader == -1 {
			return nil, kerrf(kerr.EligibleLeadersNotAvailable, "no replica of %s-%d is available", topic, partition)
		}
		n = maybeCompleteReassignment(n, img.eligible)
	default:
		return nil, kerrf(kerr.InvalidRequest, "unknown election type %d", typ)
	}
	n, _ = finishChange(p, n)
	return &record{Type: recPartitionChange, TopicID: t.ID, Partition: partition, Registration: &n}, nil
}

// electLeadersRecords plans an ElectLeaders request (Kafka's
// ReplicationControlManager.electLeaders). topics nil means every
// partition, and then partitions needing no election are left out of the
// results, as Kafka does.
func electLeadersRecords(img *Image, typ ElectionType, topics []TopicPartitions) ([]record, []PartitionResult, error) {
	pl := &planner{img: img}
	var results []PartitionResult
	one := func(topic string, partition int32, all bool) error {
		r, err := electLeaderRecord(pl.img, topic, partition, typ)
		if r != nil {
			if aerr := pl.add(*r); aerr != nil {
				return aerr
			}
		}
		if !all || !errors.Is(err, kerr.ElectionNotNeeded) {
			results = append(results, PartitionResult{Topic: topic, Partition: partition, Err: err})
		}
		return nil
	}
	if topics == nil {
		for _, t := range img.sortedTopics() {
			for i := range t.Partitions {
				if err := one(t.Name, int32(i), true); err != nil {
					return nil, nil, err
				}
			}
		}
		return pl.recs, results, nil
	}
	for _, tp := range topics {
		for _, p := range tp.Partitions {
			if err := one(tp.Topic, p, false); err != nil {
				return nil, nil, err
			}
		}
	}
	return pl.recs, results, nil
}

// validateReassignmentTarget is validateManualPartitionAssignment for a
// reassignment's target, with Kafka's messages.
func validateReassignmentTarget(img *Image, target []int32) error {
	if len(target) == 0 {
		return kerrf(kerr.InvalidReplicaAssignment, "The manual partition assignment includes an empty replica list.")
	}
	for i, id := range target {
		if slices.Contains(target[i+1:], id) {
			return kerrf(kerr.InvalidReplicaAssignment, "The manual partition assignment includes the broker %d more than once.", id)
		}
		if _, ok := img.Brokers[id]; !ok {
			return kerrf(kerr.InvalidReplicaAssignment, "The manual partition assignment includes broker %d, but no such broker is registered.", id)
		}
	}
	return nil
}

// startReassignment is changePartitionReassignment: the first step
// towards target (which may complete at once when the ISR already holds
// it, e.g. when replicas are only removed or reordered). No change (the
// target is the current assignment) is no record.
func startReassignment(img *Image, p PartitionRegistration, target []int32) (PartitionRegistration, bool) {
	current := p.Replicas
	n := p.clone()
	n.Replicas = slices.Clone(target)
	n.AddingReplicas, n.RemovingReplicas = nil, nil
	for _, id := range current {
		if !slices.Contains(target, id) {
			n.Replicas = append(n.Replicas, id)
			n.RemovingReplicas = append(n.RemovingReplicas, id)
		}
	}
	for _, id := range target {
		if !slices.Contains(current, id) {
			n.AddingReplicas = append(n.AddingReplicas, id)
		}
	}
	n = maybeCompleteReassignment(n, img.eligible)
	return finishChange(p, n)
}

// cancelReassignment is cancelPartitionReassignment with
// PartitionReassignmentRevert: back to the replicas before the
// reassignment (without the adding ones), the ISR restricted to them. An
// ISR left empty needs an unclean election, refused unless the topic
// allows it (INVALID_REPLICA_ASSIGNMENT); a leader that was an adding
// replica gives way to the first remaining ISR member that is eligible.
func cancelReassignment(img *Image, topic string, partition int32, p PartitionRegistration, unclean bool) (PartitionRegistration, error) {
	if !p.Reassigning() {
		return p, kerrf(kerr.NoReassignmentInProgress, "no partition reassignment is in progress for %s-%d", topic, partition)
	}
	orig := p.OriginalReplicas()
	n := p.clone()
	n.Replicas = orig
	n.AddingReplicas, n.RemovingReplicas = nil, nil
	n.ISR = slices.DeleteFunc(n.ISR, func(id int32) bool { return !slices.Contains(orig, id) })
	if len(n.ISR) == 0 {
		if !unclean {
			return p, kerrf(kerr.InvalidReplicaAssignment, "Unable to revert partition assignment for %s:%d because it would require an unclean leader election.", topic, partition)
		}
		n.Leader, n.ISR = -1, []int32{orig[0]}
		for _, id := range orig {
			if img.eligible(id) {
				n.Leader, n.ISR = id, []int32{id}
				break
			}
		}
	} else if !slices.Contains(n.ISR, n.Leader) || !img.eligible(n.Leader) {
		n.Leader = -1
		for _, id := range orig {
			if slices.Contains(n.ISR, id) && img.eligible(id) {
				n.Leader = id
				break
			}
		}
	}
	n, _ = finishChange(p, n)
	return n, nil
}

// reassignmentRecord plans one partition of an AlterPartitionReassignments
// request (Kafka's alterPartitionReassignment): UNKNOWN_TOPIC_OR_PARTITION,
// INVALID_REPLICA_ASSIGNMENT, INVALID_REPLICATION_FACTOR (a new replica
// count without allowRFChange), NO_REASSIGNMENT_IN_PROGRESS (cancelling
// none). Nothing to change is no record and no error.
func reassignmentRecord(img *Image, ra Reassignment, allowRFChange bool, unclean uncleanFunc) (*record, error) {
	t, p, err := lookupPartition(img, ra.Topic, ra.Partition)
	if err != nil {
		return nil, kerrf(kerr.UnknownTopicOrPartition, "Unable to find partition %s:%d.", ra.Topic, ra.Partition)
	}
	var n PartitionRegistration
	changed := true
	if ra.Replicas == nil {
		n, err = cancelReassignment(img, ra.Topic, ra.Partition, p, unclean != nil && unclean(t.Configs))
		if err != nil {
			return nil, err
		}
	} else {
		if err := validateReassignmentTarget(img, ra.Replicas); err != nil {
			return nil, err
		}
		if cur := len(p.TargetReplicas()); !allowRFChange && cur != len(ra.Replicas) {
			return nil, kerrf(kerr.InvalidReplicationFactor, "The replication factor is changed from %d to %d", cur, len(ra.Replicas))
		}
		n, changed = startReassignment(img, p, ra.Replicas)
	}
	if !changed {
		return nil, nil
	}
	return &record{Type: recPartitionChange, TopicID: t.ID, Partition: ra.Partition, Registration: &n}, nil
}

// reassignmentRecords plans an AlterPartitionReassignments request, each
// partition on its own.
func reassignmentRecords(img *Image, rs []Reassignment, allowRFChange bool, unclean uncleanFunc) ([]record, []PartitionResult, error) {
	pl := &planner{img: img}
	results := make([]PartitionResult, 0, len(rs))
	for _, ra := range rs {
		r, err := reassignmentRecord(pl.img, ra, allowRFChange, unclean)
		if r != nil {
			if aerr := pl.add(*r); aerr != nil {
				return nil, nil, aerr
			}
		}
		results = append(results, PartitionResult{Topic: ra.Topic, Partition: ra.Partition, Err: err})
	}
	return pl.recs, results, nil
}

// ongoingReassignments is listPartitionReassignments: the partitions being
// reassigned, all of them (topics nil) or among those named (unknown
// topics and partitions are left out, as Kafka does), by topic name and
// partition.
func ongoingReassignments(img *Image, topics []TopicPartitions) []OngoingReassignment {
	var out []OngoingReassignment
	add := func(t *TopicImage, i int32) {
		if i < 0 || int(i) >= len(t.Partitions) || !t.Partitions[i].Reassigning() {
			return
		}
		p := t.Partitions[i]
		out = append(out, OngoingReassignment{Topic: t.Name, Partition: i, Replicas: slices.Clone(p.Replicas),
			AddingReplicas: slices.Clone(p.AddingReplicas), RemovingReplicas: slices.Clone(p.RemovingReplicas)})
	}
	if topics == nil {
		for _, t := range img.sortedTopics() {
			for i := range t.Partitions {
				add(t, int32(i))
			}
		}
		return out
	}
	for _, tp := range topics {
		if t, ok := img.Topics[tp.Topic]; ok {
			for _, i := range tp.Partitions {
				add(t, i)
			}
		}
	}
	return out
}

// String is for logs and test failures.
func (r OngoingReassignment) String() string {
	return fmt.Sprintf("%s-%d replicas %v adding %v removing %v", r.Topic, r.Partition, r.Replicas, r.AddingReplicas, r.RemovingReplicas)
}
