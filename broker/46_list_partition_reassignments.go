package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/controller"
	"github.com/kbroker/kbroker/internal/acl"
)

// ListPartitionReassignments: v0
//
// Behavior (ReplicationControlManager.listPartitionReassignments):
// * Lists the ongoing reassignments with the whole replica set (target
//   first, then the replicas being removed) and the adding and removing
//   replicas; all of them for null topics, else those among the named
//   partitions. Unknown topics and partitions, and partitions not being
//   reassigned, are left out (no error), as Kafka does.
// * Read from this broker's metadata image, which holds every change this
//   broker made or waited for; it may trail the active controller by the
//   entries in flight (Kafka answers from the active controller).
// * A single-node broker never has a reassignment: the list is empty.
//
// Version notes:
// * v0: flexible
//
// With an authorizer: DESCRIBE on the cluster, else
// CLUSTER_AUTHORIZATION_FAILED.

func (s *Server) handleListPartitionReassignments(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.ListPartitionReassignmentsRequest)
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	if !s.authorizeCluster(creq, acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	if s.cluster == nil {
		return resp, nil
	}
	var topics []controller.TopicPartitions
	if req.Topics != nil {
		topics = []controller.TopicPartitions{}
		for _, rt := range req.Topics {
			topics = append(topics, controller.TopicPartitions{Topic: rt.Topic, Partitions: rt.Partitions})
		}
	}
	byTopic := map[string]int{}
	for _, r := range s.cluster.ctl.ListPartitionReassignments(topics) {
		i, ok := byTopic[r.Topic]
		if !ok {
			i = len(resp.Topics)
			byTopic[r.Topic] = i
			resp.Topics = append(resp.Topics, kmsg.ListPartitionReassignmentsResponseTopic{Topic: r.Topic})
		}
		sp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		sp.Partition, sp.Replicas, sp.AddingReplicas, sp.RemovingReplicas = r.Partition, r.Replicas, r.AddingReplicas, r.RemovingReplicas
		if sp.AddingReplicas == nil {
			sp.AddingReplicas = []int32{}
		}
		if sp.RemovingReplicas == nil {
			sp.RemovingReplicas = []int32{}
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, sp)
	}
	return resp, nil
}
