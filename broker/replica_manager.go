package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

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

func (s *Server) partitionState(*storage.Topic, int32) PartitionState {
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
