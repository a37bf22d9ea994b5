package broker

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/controller"
	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
)

// AlterPartitionReassignments: v0-1
//
// Behavior (ReplicationControlManager.alterPartitionReassignments, which a
// KRaft broker forwards to):
// * A replica list is the partition's target. The controller first makes
//   Replicas the target followed by the current replicas not in it, with
//   the adding and removing replicas recorded; the brokers of new replicas
//   start following the leader, which adds them to the ISR once caught
//   up; when the ISR holds the whole target, the controller completes the
//   reassignment in the same record: Replicas = target, the removed
//   replicas leave the ISR, a removed leader gives way to the first target
//   replica in the ISR, the leader epoch grows. The response comes once
//   the first step is applied here; ListPartitionReassignments follows the
//   rest.
// * The target must be non-empty, name registered brokers, each once:
//   otherwise INVALID_REPLICA_ASSIGNMENT with Kafka's messages. A target
//   equal to the current replicas changes nothing and succeeds.
// * A null replica list cancels the ongoing reassignment (back to the
//   replicas before it, the ISR restricted to them):
//   NO_REASSIGNMENT_IN_PROGRESS without one; INVALID_REPLICA_ASSIGNMENT if
//   it would need an unclean election the topic does not allow.
// * Unknown topics or partitions get UNKNOWN_TOPIC_OR_PARTITION.
// * A single-node broker is the only registered broker: a target of just
//   this node is no change, any other broker INVALID_REPLICA_ASSIGNMENT,
//   and there is never a reassignment to cancel.
// * A controller that cannot be reached in time is the top-level
//   REQUEST_TIMED_OUT.
//
// Version notes:
// * v0: flexible
// * v1: AllowReplicationFactorChange (KIP-860): when false, a target of
//   another size than the current one is INVALID_REPLICATION_FACTOR
//
// With an authorizer: ALTER on the cluster, else
// CLUSTER_AUTHORIZATION_FAILED.

func (s *Server) handleAlterPartitionReassignments(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.AlterPartitionAssignmentsRequest)
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	if !s.authorizeCluster(creq, acl.OpAlter) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	allowRF := req.Version < 1 || req.AllowReplicationFactorChange
	var rs []controller.Reassignment
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			rs = append(rs, controller.Reassignment{Topic: rt.Topic, Partition: rp.Partition, Replicas: rp.Replicas})
		}
	}

	var results []controller.PartitionResult
	if s.cluster != nil {
		err := s.cluster.change(func(ctx context.Context) error {
			var err error
			results, err = s.cluster.ctl.AlterPartitionReassignments(ctx, allowRF, rs)
			return err
		})
		if err != nil {
			code := protocol.KafkaError(err)
			if errorsIsContext(err) {
				code = kerr.RequestTimedOut
			}
			resp.ErrorCode, resp.ErrorMessage = code.Code, kmsg.StringPtr(err.Error())
			return resp, nil
		}
	} else {
		for _, ra := range rs {
			results = append(results, controller.PartitionResult{Topic: ra.Topic, Partition: ra.Partition, Err: s.reassignSingleNode(ra, allowRF)})
		}
	}

	byTopic := map[string]int{}
	for _, r := range results {
		i, ok := byTopic[r.Topic]
		if !ok {
			i = len(resp.Topics)
			byTopic[r.Topic] = i
			resp.Topics = append(resp.Topics, kmsg.AlterPartitionAssignmentsResponseTopic{Topic: r.Topic})
		}
		sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
		sp.Partition = r.Partition
		if r.Err != nil {
			sp.ErrorCode = protocol.KafkaError(r.Err).Code
			sp.ErrorMessage = kmsg.StringPtr(r.Err.Error())
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, sp)
	}
	return resp, nil
}

// reassignSingleNode answers one partition on a single-node broker, whose
// partitions all have the one replica this node.
func (s *Server) reassignSingleNode(ra controller.Reassignment, allowRF bool) error {
	t, ok := s.logs.Topic(ra.Topic)
	if !ok || ra.Partition < 0 || int(ra.Partition) >= len(t.Partitions) {
		return fmt.Errorf("%w: Unable to find partition %s:%d.", kerr.UnknownTopicOrPartition, ra.Topic, ra.Partition)
	}
	if ra.Replicas == nil {
		return fmt.Errorf("%w: No partition reassignment is in progress for %s:%d.", kerr.NoReassignmentInProgress, ra.Topic, ra.Partition)
	}
	if msg := s.validateManualAssignment(ra.Replicas, len(ra.Replicas)); msg != "" {
		return fmt.Errorf("%w: %s", kerr.InvalidReplicaAssignment, msg)
	}
	if !allowRF && len(ra.Replicas) != 1 {
		return fmt.Errorf("%w: The replication factor is changed from 1 to %d", kerr.InvalidReplicationFactor, len(ra.Replicas))
	}
	return nil // [this node]: what it is already
}
