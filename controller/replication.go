package controller

import (
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
)

// This file is the pure part of the active controller (Kafka's
// ReplicationControlManager, ClusterControlManager and
// PartitionChangeBuilder): functions from an image and a request to the
// records that carry it out. They do not touch raft, so they are table
// tested on images.

// kerrf wraps a Kafka error with a message; errors.As finds the code.
func kerrf(e *kerr.Error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", e, fmt.Sprintf(format, args...))
}

// uncleanFunc reports whether a topic allows unclean leader election.
type uncleanFunc func(topicConfigs map[string]string) bool

// partitionChange is PartitionChangeBuilder for the changes a broker's state
// causes. drop, unless -1, leaves the ISR unless it is the last member (the
// ISR never empties: its last member is the one to wait for). The leader is
// kept if still eligible; otherwise the first replica, in replica order, in
// the new ISR and eligible leads with LeaderEpoch+1; with none, the partition
// goes offline (Leader -1) unless unclean election is allowed, which takes
// any eligible replica with ISR = [it]. Any change bumps PartitionEpoch.
func partitionChange(p PartitionRegistration, eligible func(int32) bool, drop int32, unclean bool) (PartitionRegistration, bool) {
	n := p.clone()
	if drop != -1 && len(n.ISR) > 1 && slices.Contains(n.ISR, drop) {
		n.ISR = slices.DeleteFunc(n.ISR, func(id int32) bool { return id == drop })
	}
	if n.Leader == -1 || !eligible(n.Leader) {
		leader := int32(-1)
		for _, id := range n.Replicas {
			if slices.Contains(n.ISR, id) && eligible(id) {
				leader = id
				break
			}
		}
		if leader == -1 && unclean {
			for _, id := range n.Replicas {
				if eligible(id) {
					leader, n.ISR = id, []int32{id}
					break
				}
			}
		}
		if leader != n.Leader {
			n.Leader = leader
			n.LeaderEpoch++
		}
	}
	if slices.Equal(n.ISR, p.ISR) && n.Leader == p.Leader {
		return p, false
	}
	n.PartitionEpoch++
	return n, true
}

// brokerChangeRecords returns the partition changes that follow a change of
// broker state already applied to img (fenced, shutting down, unfenced):
// drop is the broker leaving ISRs, or -1.
func brokerChangeRecords(img *Image, drop int32, unclean uncleanFunc) []record {
	var recs []record
	for _, t := range img.sortedTopics() {
		u := unclean != nil && unclean(t.Configs)
		for i, p := range t.Partitions {
			if drop == -1 && p.Leader != -1 {
				continue // an unfence only helps offline partitions
			}
			if n, ok := partitionChange(p, img.eligible, drop, u); ok {
				recs = append(recs, record{Type: recPartitionChange, TopicID: t.ID, Partition: int32(i), Registration: &n})
			}
		}
	}
	return recs
}

// withBroker returns img with broker b replaced (for planning only: the
// copy shares everything else).
func withBroker(img *Image, b BrokerRegistration) *Image {
	n := *img
	n.Brokers = make(map[int32]BrokerRegistration, len(img.Brokers)+1)
	for id, x := range img.Brokers {
		n.Brokers[id] = x
	}
	n.Brokers[b.ID] = b
	return &n
}

// fenceBrokerRecords fences broker id (session expired, a new incarnation,
// or the end of a controlled shutdown) and moves what it led (Kafka's
// handleBrokerFenced).
func fenceBrokerRecords(img *Image, id int32, unclean uncleanFunc) []record {
	b, ok := img.Brokers[id]
	if !ok || b.Fenced {
		return nil
	}
	b.Fenced = true
	recs := []record{{Type: recFenceBroker, BrokerID: id}}
	return append(recs, brokerChangeRecords(withBroker(img, b), id, unclean)...)
}

// controlledShutdownRecords marks broker id as shutting down and moves its
// leaderships and ISR places away (Kafka's handleBrokerInControlledShutdown).
func controlledShutdownRecords(img *Image, id int32, unclean uncleanFunc) []record {
	b, ok := img.Brokers[id]
	if !ok || b.Fenced || b.InControlledShutdown {
		return nil
	}
	b.InControlledShutdown = true
	recs := []record{{Type: recBrokerControlledShutdown, BrokerID: id}}
	return append(recs, brokerChangeRecords(withBroker(img, b), id, unclean)...)
}

// unfenceBrokerRecords unfences broker id and gives offline partitions it
// can lead a leader (Kafka's handleBrokerUnfenced).
func unfenceBrokerRecords(img *Image, id int32, unclean uncleanFunc) []record {
	b, ok := img.Brokers[id]
	if !ok || !b.Fenced {
		return nil
	}
	b.Fenced, b.InControlledShutdown = false, false
	recs := []record{{Type: recUnfenceBroker, BrokerID: id}}
	return append(recs, brokerChangeRecords(withBroker(img, b), -1, unclean)...)
}

// registerBrokerRecords registers a broker incarnation. It starts fenced. A
// broker already registered and active (unfenced) is first fenced with all
// the effects of a fence: a new registration means the old process is gone
// (restarted, maybe after kill -9), whatever its session says.
func registerBrokerRecords(img *Image, reg BrokerRegistration, unclean uncleanFunc) []record {
	recs := fenceBrokerRecords(img, reg.ID, unclean)
	reg.Fenced, reg.InControlledShutdown = true, false
	return append(recs, record{Type: recRegisterBroker, Broker: &reg})
}

// validTopicName is Kafka's Topic.validate.
func validTopicName(name string) error {
	switch {
	case name == "":
		return kerrf(kerr.InvalidTopicException, "topic name is empty")
	case name == "." || name == "..":
		return kerrf(kerr.InvalidTopicException, "topic name cannot be %q", name)
	case len(name) > 249:
		return kerrf(kerr.InvalidTopicException, "topic name is longer than 249 characters")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-", c)) {
			return kerrf(kerr.InvalidTopicException, "topic name %q contains a character other than ASCII alphanumerics, '.', '_' and '-'", name)
		}
	}
	return nil
}

// placeReplicas puts rf replicas for partitions [first, first+n) on the
// eligible brokers, round-robin from start (Kafka's StripedReplicaPlacer,
// without racks): partition p's replicas are brokers start+p, start+p+1, ...
// so leaders (the first replica) spread over the brokers.
func placeReplicas(brokers []int32, start, first, n int, rf int) [][]int32 {
	out := make([][]int32, n)
	for i := range n {
		reps := make([]int32, rf)
		for j := range rf {
			reps[j] = brokers[(start+first+i+j)%len(brokers)]
		}
		out[i] = reps
	}
	return out
}

// newPartitions turns replica lists into registrations: the ISR is the
// eligible replicas (all of them for placed ones), the leader its first.
func newPartitions(img *Image, assignment [][]int32) ([]PartitionRegistration, error) {
	ps := make([]PartitionRegistration, len(assignment))
	for i, reps := range assignment {
		var isr []int32
		for _, id := range reps {
			if img.eligible(id) {
				isr = append(isr, id)
			}
		}
		if len(isr) == 0 {
			return nil, kerrf(kerr.InvalidReplicaAssignment, "all brokers of partition %d's assignment %v are fenced or shutting down", i, reps)
		}
		ps[i] = PartitionRegistration{Replicas: slices.Clone(reps), ISR: isr, Leader: isr[0]}
	}
	return ps, nil
}

// checkAssignment validates manual replica lists (Kafka's
// validateManualPartitionAssignment): one non-empty list per partition, of
// equal length, of registered brokers, each once.
func checkAssignment(img *Image, assignment [][]int32) error {
	for i, reps := range assignment {
		switch {
		case len(reps) == 0:
			return kerrf(kerr.InvalidReplicaAssignment, "partition %d has no replicas", i)
		case len(reps) != len(assignment[0]):
			return kerrf(kerr.InvalidReplicaAssignment, "partition %d has %d replicas, partition 0 has %d", i, len(reps), len(assignment[0]))
		case hasDuplicates(reps):
			return kerrf(kerr.InvalidReplicaAssignment, "partition %d lists a broker twice: %v", i, reps)
		}
		for _, id := range reps {
			if _, ok := img.Brokers[id]; !ok {
				return kerrf(kerr.InvalidReplicaAssignment, "partition %d names broker %d, which is not registered", i, id)
			}
		}
	}
	return nil
}

// createTopicRecords plans a topic. start rotates placement; id is the new
// topic's id; defaults are num.partitions and default.replication.factor.
func createTopicRecords(img *Image, spec CreateTopicSpec, id [16]byte, start int, defPartitions int32, defRF int16, validate func(map[string]string) error) (*TopicImage, []record, error) {
	if err := validTopicName(spec.Name); err != nil {
		return nil, nil, err
	}
	if _, ok := img.Topics[spec.Name]; ok {
		return nil, nil, kerrf(kerr.TopicAlreadyExists, "topic %q already exists", spec.Name)
	}
	if validate != nil {
		if err := validate(spec.Configs); err != nil {
			return nil, nil, kerrf(kerr.InvalidConfig, "%v", err)
		}
	}
	var assignment [][]int32
	if len(spec.Assignment) > 0 {
		if spec.NumPartitions != -1 && int(spec.NumPartitions) != len(spec.Assignment) || spec.ReplicationFactor != -1 && int(spec.ReplicationFactor) != len(spec.Assignment[0]) {
			return nil, nil, kerrf(kerr.InvalidRequest, "both numPartitions and replicationFactor must be -1 (or match) with a manual assignment")
		}
		if err := checkAssignment(img, spec.Assignment); err != nil {
			return nil, nil, err
		}
		assignment = spec.Assignment
	} else {
		n, rf := spec.NumPartitions, spec.ReplicationFactor
		if n == -1 {
			n = defPartitions
		}
		if rf == -1 {
			rf = defRF
		}
		if n <= 0 {
			return nil, nil, kerrf(kerr.InvalidPartitions, "number of partitions was set to an invalid non-positive value")
		}
		if rf <= 0 {
			return nil, nil, kerrf(kerr.InvalidReplicationFactor, "replication factor must be larger than 0")
		}
		brokers := img.eligibleBrokers()
		if int(rf) > len(brokers) {
			return nil, nil, kerrf(kerr.InvalidReplicationFactor, "unable to replicate the partition %d time(s): the number of brokers is only %d", rf, len(brokers))
		}
		assignment = placeReplicas(brokers, start, 0, int(n), int(rf))
	}
	parts, err := newPartitions(img, assignment)
	if err != nil {
		return nil, nil, err
	}
	t := &TopicImage{Name: spec.Name, ID: id, Configs: spec.Configs, Partitions: parts}
	return t, []record{{Type: recCreateTopic, Topic: t}}, nil
}

// createPartitionsRecords plans growing a topic to total partitions.
func createPartitionsRecords(img *Image, name string, total int32, assignment [][]int32, start int) ([]record, error) {
	t, ok := img.Topics[name]
	if !ok {
		return nil, kerrf(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
	}
	have := int32(len(t.Partitions))
	switch {
	case total < have:
		return nil, kerrf(kerr.InvalidPartitions, "topic currently has %d partitions, which is higher than the requested %d", have, total)
	case total == have:
		return nil, kerrf(kerr.InvalidPartitions, "topic already has %d partitions", have)
	}
	rf := len(t.Partitions[0].Replicas)
	if len(assignment) > 0 {
		if int32(len(assignment)) != total-have {
			return nil, kerrf(kerr.InvalidReplicaAssignment, "%d assignments for %d new partitions", len(assignment), total-have)
		}
		if err := checkAssignment(img, assignment); err != nil {
			return nil, err
		}
		if len(assignment[0]) != rf {
			return nil, kerrf(kerr.InvalidReplicaAssignment, "the manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have %d replica(s)", len(assignment[0]), rf)
		}
	} else {
		brokers := img.eligibleBrokers()
		if rf > len(brokers) {
			return nil, kerrf(kerr.InvalidReplicationFactor, "unable to replicate the partition %d time(s): the number of brokers is only %d", rf, len(brokers))
		}
		assignment = placeReplicas(brokers, start, int(have), int(total-have), rf)
	}
	parts, err := newPartitions(img, assignment)
	if err != nil {
		return nil, err
	}
	return []record{{Type: recCreatePartitions, TopicID: t.ID, Partitions: parts}}, nil
}

// alterPartitionRecords validates an AlterPartition from broker
// (Kafka's ReplicationControlManager.alterPartition): the sender must be the
// leader at the current leader epoch and partition epoch, and replicas it
// adds to the ISR must be eligible. The partition epoch grows; the leader
// epoch too when the new ISR completes a reassignment that removes
// replicas (and the leader may then change: the caller answers
// NEW_LEADER_ELECTED).
func alterPartitionRecords(img *Image, broker int32, topicID [16]byte, partition, leaderEpoch, partitionEpoch int32, newISR []int32) (PartitionRegistration, []record, error) {
	var none PartitionRegistration
	t, ok := img.TopicsByID[topicID]
	if !ok {
		return none, nil, kerrf(kerr.UnknownTopicID, "unknown topic id %x", topicID)
	}
	if partition < 0 || int(partition) >= len(t.Partitions) {
		return none, nil, kerrf(kerr.UnknownTopicOrPartition, "%s-%d does not exist", t.Name, partition)
	}
	p := t.Partitions[partition]
	switch {
	case p.Leader != broker:
		return none, nil, kerrf(kerr.NotLeaderForPartition, "broker %d is not the leader of %s-%d (leader %d)", broker, t.Name, partition, p.Leader)
	case leaderEpoch != p.LeaderEpoch:
		return none, nil, kerrf(kerr.FencedLeaderEpoch, "leader epoch %d, current %d", leaderEpoch, p.LeaderEpoch)
	case partitionEpoch != p.PartitionEpoch:
		return none, nil, kerrf(kerr.InvalidUpdateVersion, "partition epoch %d, current %d", partitionEpoch, p.PartitionEpoch)
	case len(newISR) == 0 || hasDuplicates(newISR) || !slices.Contains(newISR, broker):
		return none, nil, kerrf(kerr.InvalidRequest, "invalid ISR %v: it must name the leader and each replica once", newISR)
	}
	for _, id := range newISR {
		if !slices.Contains(p.Replicas, id) {
			return none, nil, kerrf(kerr.InvalidRequest, "ISR member %d is not a replica of %s-%d", id, t.Name, partition)
		}
		if !slices.Contains(p.ISR, id) && !img.eligible(id) {
			return none, nil, kerrf(kerr.IneligibleReplica, "broker %d is fenced or shutting down and may not join the ISR", id)
		}
	}
	n := p.clone()
	n.ISR = slices.Clone(newISR)
	// An ISR that now holds a reassignment's whole target completes it in
	// this same record (Kafka's PartitionChangeBuilder.completeReassignmentIfNeeded).
	n, changed := finishChange(p, maybeCompleteReassignment(n, img.eligible))
	if !changed {
		n = p.clone()
		n.PartitionEpoch++
	}
	return n, []record{{Type: recPartitionChange, TopicID: topicID, Partition: partition, Registration: &n}}, nil
}
