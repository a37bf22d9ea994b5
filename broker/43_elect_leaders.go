package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/controller"
	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
)

// ElectLeaders: v0-2
//
// Behavior (ReplicationControlManager.electLeaders, which a KRaft broker
// forwards to):
// * PREFERRED (0, and all of v0) makes the first replica leader if it is in
//   the ISR and its broker is unfenced and not shutting down; already
//   leading is ELECTION_NOT_NEEDED, otherwise PREFERRED_LEADER_NOT_AVAILABLE.
// * UNCLEAN (1) elects only for leaderless partitions: the first ISR member
//   available, else the first live replica, which becomes the whole ISR;
//   a partition with a leader is ELECTION_NOT_NEEDED, one with no live
//   replica ELIGIBLE_LEADERS_NOT_AVAILABLE.
// * An election bumps the leader epoch (a PartitionChange record through
//   the metadata log); the response comes once this broker has applied it.
// * Topics null means every partition, and the response then leaves out
//   the partitions that needed no election, as Kafka does.
// * Unknown topics or partitions get UNKNOWN_TOPIC_OR_PARTITION.
// * A single-node broker leads every partition it has: PREFERRED and
//   UNCLEAN are both ELECTION_NOT_NEEDED (and nothing for null topics).
// * A controller that cannot be reached in time is REQUEST_TIMED_OUT for
//   every named partition (v0, which has no top-level error) or the
//   top-level error (v1+).
//
// Version notes:
// * v1: ElectionType; top-level ErrorCode (KIP-460)
// * v2: flexible
//
// With an authorizer: ALTER on the cluster, else
// CLUSTER_AUTHORIZATION_FAILED for the request and each partition.

func (s *Server) handleElectLeaders(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.ElectLeadersRequest)
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	typ := controller.ElectionType(req.ElectionType)
	if req.Version == 0 {
		typ = controller.ElectPreferred
	}
	var topics []controller.TopicPartitions
	if req.Topics != nil {
		topics = []controller.TopicPartitions{}
		for _, rt := range req.Topics {
			topics = append(topics, controller.TopicPartitions{Topic: rt.Topic, Partitions: rt.Partitions})
		}
	}

	var results []controller.PartitionResult
	if !s.authorizeCluster(creq, acl.OpAlter) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		for _, tp := range topics {
			for _, p := range tp.Partitions {
				results = append(results, controller.PartitionResult{Topic: tp.Topic, Partition: p, Err: kerr.ClusterAuthorizationFailed})
			}
		}
	} else if s.cluster != nil {
		err := s.cluster.change(func(ctx context.Context) error {
			var err error
			results, err = s.cluster.ctl.ElectLeaders(ctx, typ, topics)
			return err
		})
		if err != nil {
			code := protocol.KafkaError(err)
			if errorsIsContext(err) {
				code = kerr.RequestTimedOut
			}
			if req.Version >= 1 {
				resp.ErrorCode = code.Code
				return resp, nil
			}
			results = nil
			for _, tp := range topics {
				for _, p := range tp.Partitions {
					results = append(results, controller.PartitionResult{Topic: tp.Topic, Partition: p, Err: fmt.Errorf("%w: %v", code, err)})
				}
			}
		}
	} else {
		for _, tp := range topics {
			for _, p := range tp.Partitions {
				r := controller.PartitionResult{Topic: tp.Topic, Partition: p, Err: kerr.ElectionNotNeeded}
				if t, ok := s.logs.Topic(tp.Topic); !ok || p < 0 || int(p) >= len(t.Partitions) {
					r.Err = kerr.UnknownTopicOrPartition
				}
				results = append(results, r)
			}
		}
	}

	byTopic := map[string]int{}
	for _, r := range results {
		i, ok := byTopic[r.Topic]
		if !ok {
			i = len(resp.Topics)
			byTopic[r.Topic] = i
			resp.Topics = append(resp.Topics, kmsg.ElectLeadersResponseTopic{Topic: r.Topic})
		}
		sp := kmsg.NewElectLeadersResponseTopicPartition()
		sp.Partition = r.Partition
		if r.Err != nil {
			sp.ErrorCode = protocol.KafkaError(r.Err).Code
			sp.ErrorMessage = kmsg.StringPtr(r.Err.Error())
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, sp)
	}
	return resp, nil
}

// errorsIsContext reports whether a controller call ran out of time.
func errorsIsContext(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
