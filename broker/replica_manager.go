package broker

import (
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/controller"
	"github.com/kbroker/kbroker/storage"
)

// PartitionState is what the broker knows of a partition's replication
// (Kafka's PartitionRegistration): kept as data, not constants, so a
// replicated cluster can fill it in. On one broker this node leads every
// partition at epoch 0 and is its only in-sync replica.
type PartitionState struct {
	Leader      int32
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
}

func (s *Server) partitionState(t *storage.Topic, p int32) PartitionState {
	if s.cluster != nil {
		return s.cluster.partitionState(t.Name, p)
	}
	self := []int32{s.cfg.NodeID}
	return PartitionState{Leader: s.cfg.NodeID, LeaderEpoch: 0, Replicas: self, ISR: self}
}

// leaderLog returns the log of partition p of t for a request that only the
// leader serves, after checking the client's CurrentLeaderEpoch (Kafka's
// Partition.localLogWithEpochOrThrow). t may be nil for an unknown topic.
func (s *Server) leaderLog(t *storage.Topic, p, currentLeaderEpoch int32) (*storage.Log, PartitionState, *kerr.Error) {
	if t == nil || p < 0 || int(p) >= len(t.Partitions) {
		return nil, PartitionState{}, kerr.UnknownTopicOrPartition
	}
	st := s.partitionState(t, p)
	if err := checkLeaderEpoch(currentLeaderEpoch, st); err != nil {
		return nil, st, err
	}
	if st.Leader != s.cfg.NodeID {
		return nil, st, kerr.NotLeaderForPartition
	}
	return t.Partitions[p], st, nil
}

// autoCreateTopic creates topic with the broker defaults when
// auto.create.topics.enable allows it (Kafka's AutoTopicCreationManager). A
// concurrent creation by another client is not an error.
func (s *Server) autoCreateTopic(name string) (*storage.Topic, error) {
	if !s.cfg.AutoCreateTopicsEnable {
		return nil, kerr.UnknownTopicOrPartition
	}
	if s.cluster != nil {
		return s.cluster.createTopic(controller.CreateTopicSpec{Name: name, NumPartitions: -1, ReplicationFactor: -1})
	}
	t, err := s.logs.CreateTopic(name, s.cfg.NumPartitions, nil)
	if errors.Is(err, storage.ErrTopicExists) {
		if t, ok := s.logs.Topic(name); ok {
			return t, nil
		}
	}
	if err == nil {
		s.logger.Info("auto-created topic", "topic", name, "partitions", s.cfg.NumPartitions)
	}
	return t, err
}

// checkLeaderEpoch validates a client's CurrentLeaderEpoch (KIP-320): -1
// skips the check, a newer epoch than ours means our metadata is stale, an
// older one means the client's is.
func checkLeaderEpoch(current int32, st PartitionState) *kerr.Error {
	switch {
	case current < 0 || current == st.LeaderEpoch:
		return nil
	case current > st.LeaderEpoch:
		return kerr.UnknownLeaderEpoch
	default:
		return kerr.FencedLeaderEpoch
	}
}

// pendingProduce is an acks=all append waiting for the ISR, and where its
// answer sits in the response.
type pendingProduce struct {
	part             *Partition
	topic, partition int // indexes into the response
	offset           int64
	minISR           int32
}

// waitForProduce waits, within timeout for all of them, until each acks=all
// append is committed, and turns those that are not into errors (Kafka's
// DelayedProduce).
func (s *Server) waitForProduce(resp *kmsg.ProduceResponse, waits []pendingProduce, timeout time.Duration, l *boundListener) {
	deadline := time.Now().Add(timeout)
	for _, w := range waits {
		err := w.part.waitCommitted(w.offset, w.minISR, time.Until(deadline), s.closing)
		if err == nil {
			continue
		}
		sp := &resp.Topics[w.topic].Partitions[w.partition]
		sp.ErrorCode, sp.BaseOffset, sp.LogAppendTime = err.Code, -1, -1
		if err == kerr.NotLeaderForPartition {
			s.currentLeader(resp, sp, w.part.topic, l)
		}
	}
}

// currentLeader fills in a NOT_LEADER_OR_FOLLOWER answer's current leader
// and its endpoint on the client's listener (KIP-951, Produce v10+), so the
// client moves on without a metadata round trip.
func (s *Server) currentLeader(resp *kmsg.ProduceResponse, sp *kmsg.ProduceResponseTopicPartition, topic string, l *boundListener) {
	if resp.Version < 10 {
		return
	}
	nl, ok := s.newLeader(topic, sp.Partition, l)
	if !ok {
		return
	}
	sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = nl.id, nl.epoch
	if nl.endpoint && !slices.ContainsFunc(resp.Brokers, func(b kmsg.ProduceResponseBroker) bool { return b.NodeID == nl.id }) {
		resp.Brokers = append(resp.Brokers, kmsg.ProduceResponseBroker{NodeID: nl.id, Host: nl.host, Port: nl.port, Rack: nl.rack})
	}
}

// leaderInfo is a partition's leader as KIP-951 hands it to clients.
type leaderInfo struct {
	id, epoch int32
	endpoint  bool // host, port and rack are known
	host      string
	port      int32
	rack      *string
}

// newLeader returns the partition's leader when, in a cluster, another
// broker leads it, with its endpoint on the client's listener l.
func (s *Server) newLeader(topic string, partition int32, l *boundListener) (leaderInfo, bool) {
	if s.cluster == nil {
		return leaderInfo{}, false
	}
	reg, ok := s.cluster.registration(topic, partition)
	if !ok || reg.Leader < 0 || reg.Leader == s.cfg.NodeID {
		return leaderInfo{}, false
	}
	nl := leaderInfo{id: reg.Leader, epoch: reg.LeaderEpoch}
	if ep, ok := s.cluster.endpoint(reg.Leader, l.Name); ok {
		nl.endpoint, nl.host, nl.port = true, ep.Host, ep.Port
		if rack := s.cluster.ctl.Image().Brokers[reg.Leader].Rack; rack != "" {
			nl.rack = &rack
		}
	}
	return nl, true
}
