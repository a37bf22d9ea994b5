package broker

import (
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
)

// CreatePartitions: v0-3
//
// Behavior (ControllerApis.createPartitions,
// ReplicationControlManager.createPartitions, which a KRaft broker forwards
// to):
// * Partitions only grow. Count equal to the current count or below it is
//   INVALID_PARTITIONS with Kafka's KRaft messages ("Topic already has N
//   partition(s)." / "The topic T currently has N partition(s); C would not
//   be an increase.").
// * Assignment, when not null, must have one entry per new partition, and
//   each entry a non-empty list of registered brokers (only this node), no
//   broker twice, as many as the topic's replication factor: otherwise
//   INVALID_REPLICA_ASSIGNMENT with Kafka's message.
// * A topic named twice in one request gets INVALID_REQUEST "Duplicate topic
//   name." once, and is not grown.
// * Unknown topics get UNKNOWN_TOPIC_OR_PARTITION with no message.
// * ValidateOnly runs every check and creates nothing.
// * The topics of one request may add at most maxPartitionsPerRequest
//   partitions in all; a topic that would go past it gets POLICY_VIOLATION
//   "Unable to perform excessively large batch operation." and is not grown.
//   That is the controller's answer when a request overflows its bounded
//   record list; ReplicationControlManager.createPartitions catches the
//   overflow per topic instead and reports UNKNOWN_SERVER_ERROR, keeping the
//   topic's records added before it.
//
// Version notes:
// * v1: no change
// * v2: flexible
// * v3: no change (strict controller mutation quota in Kafka)
//
// With an authorizer: ALTER on the topic, else
// TOPIC_AUTHORIZATION_FAILED.

func (s *Server) handleCreatePartitions(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)

	count := make(map[string]int, len(req.Topics))
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	answered := make(map[string]bool)
	budget := int64(maxPartitionsPerRequest)
	for _, rt := range req.Topics {
		if answered[rt.Topic] {
			continue
		}
		answered[rt.Topic] = true
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var (
			err *kerr.Error
			msg string
		)
		if count[rt.Topic] > 1 {
			err, msg = kerr.InvalidRequest, "Duplicate topic name."
		} else if !s.authorize(creq, acl.OpAlter, acl.ResourceTopic, rt.Topic) {
			err = kerr.TopicAuthorizationFailed
		} else {
			err, msg = s.createPartitions(rt, req.ValidateOnly, &budget)
		}
		if err != nil {
			st.ErrorCode = err.Code
			if msg != "" {
				st.ErrorMessage = kmsg.StringPtr(msg)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// createPartitions validates and applies one topic's growth, returning the
// error and Kafka's message for it. budget is what the request may still
// add; the growth is taken from it.
func (s *Server) createPartitions(rt kmsg.CreatePartitionsRequestTopic, validateOnly bool, budget *int64) (*kerr.Error, string) {
	t, ok := s.logs.Topic(rt.Topic)
	if !ok {
		return kerr.UnknownTopicOrPartition, ""
	}
	current := int32(len(t.Partitions))
	switch {
	case rt.Count == current:
		return kerr.InvalidPartitions, fmt.Sprintf("Topic already has %d partition(s).", current)
	case rt.Count < current:
		return kerr.InvalidPartitions, fmt.Sprintf("The topic %s currently has %d partition(s); %d would not be an increase.", rt.Topic, current, rt.Count)
	}
	if rt.Assignment != nil {
		if additional := rt.Count - current; int(additional) != len(rt.Assignment) {
			return kerr.InvalidReplicaAssignment, fmt.Sprintf("Attempted to add %d additional partition(s), but only %d assignment(s) were specified.", additional, len(rt.Assignment))
		}
		replicationFactor := len(s.partitionState(t, 0).Replicas)
		for _, a := range rt.Assignment {
			if s.cluster != nil {
				break // the controller knows the brokers
			}
			if msg := s.validateManualAssignment(a.Replicas, replicationFactor); msg != "" {
				return kerr.InvalidReplicaAssignment, msg
			}
		}
	}
	additional := int64(rt.Count) - int64(current)
	if additional > *budget {
		return kerr.PolicyViolation, "Unable to perform excessively large batch operation."
	}
	*budget -= additional
	if validateOnly {
		return nil, ""
	}
	if s.cluster != nil {
		var assignment [][]int32
		for _, a := range rt.Assignment {
			assignment = append(assignment, a.Replicas)
		}
		if err := s.cluster.createPartitions(rt.Topic, rt.Count, assignment); err != nil {
			return protocol.KafkaError(err), err.Error()
		}
		s.logger.Info("created partitions", "topic", rt.Topic, "from", current, "to", rt.Count)
		return nil, ""
	}
	if _, err := s.logs.CreatePartitions(rt.Topic, rt.Count); err != nil {
		return protocol.KafkaError(err), err.Error()
	}
	s.logger.Info("created partitions", "topic", rt.Topic, "from", current, "to", rt.Count)
	return nil, ""
}

// validateManualAssignment mirrors
// ReplicationControlManager.validateManualPartitionAssignment; the only
// registered broker is this node.
func (s *Server) validateManualAssignment(replicas []int32, replicationFactor int) string {
	if len(replicas) == 0 {
		return "The manual partition assignment includes an empty replica list."
	}
	sorted := slices.Sorted(slices.Values(replicas))
	for i, id := range sorted {
		if id != s.cfg.NodeID {
			return fmt.Sprintf("The manual partition assignment includes broker %d, but no such broker is registered.", id)
		}
		if i > 0 && id == sorted[i-1] {
			return fmt.Sprintf("The manual partition assignment includes the broker %d more than once.", id)
		}
	}
	if len(sorted) != replicationFactor {
		return fmt.Sprintf("The manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have %d replica(s).", len(sorted), replicationFactor)
	}
	return ""
}
