package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// OffsetCommit: v2-10
//
// Behavior: coordinator.GroupCoordinator.OffsetCommit (Kafka's
// OffsetMetadataManager.commitOffset). The response waits until the offsets
// are in meta.db; concurrent commits share one transaction.
//
// With an authorizer (KafkaApis.handleOffsetCommitRequest): READ on the
// group, else every partition is GROUP_AUTHORIZATION_FAILED; READ on each
// topic, else its partitions are TOPIC_AUTHORIZATION_FAILED and only the
// others are committed.
//
// Version notes:
// * v2-4: RetentionTimeMillis; when not -1 it replaces offsets.retention.minutes for the offsets it commits
// * v6: committed leader epoch (KIP-320)
// * v7: InstanceID (KIP-345)
// * v8: flexible
// * v9: the member epoch of KIP-848 consumers; GROUP_ID_NOT_FOUND for an unknown group
// * v10: topic ids

func (s *Server) handleOffsetCommit(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.OffsetCommitRequest)
	if s.authz == nil {
		return creq.coord.groups.OffsetCommit(req), nil
	}
	groupDenied := !s.authorize(creq, acl.OpRead, acl.ResourceGroup, req.Group)
	var allowed, denied []kmsg.OffsetCommitRequestTopic
	for _, t := range req.Topics {
		if !groupDenied && s.topicAllowed(creq, acl.OpRead, t.Topic, t.TopicID) {
			allowed = append(allowed, t)
		} else {
			denied = append(denied, t)
		}
	}
	var resp *kmsg.OffsetCommitResponse
	if len(allowed) > 0 {
		sub := *req
		sub.Topics = allowed
		resp = creq.coord.groups.OffsetCommit(&sub)
	} else {
		resp = req.ResponseKind().(*kmsg.OffsetCommitResponse)
	}
	code := kerr.TopicAuthorizationFailed.Code
	if groupDenied {
		code = kerr.GroupAuthorizationFailed.Code
	}
	for _, t := range denied {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: code})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
