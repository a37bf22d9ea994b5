package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// OffsetDelete: v0
//
// Behavior: coordinator.GroupCoordinator.OffsetDelete (Kafka's
// OffsetMetadataManager.deleteOffsets).
//
// With an authorizer: DELETE on the group (GROUP_AUTHORIZATION_FAILED) and
// READ on each topic (TOPIC_AUTHORIZATION_FAILED for its partitions).

func (s *Server) handleOffsetDelete(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.OffsetDeleteRequest)
	if s.authz == nil {
		return creq.coord.groups.OffsetDelete(req), nil
	}
	if !s.authorize(creq, acl.OpDelete, acl.ResourceGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	sub := *req
	sub.Topics = nil
	var denied []kmsg.OffsetDeleteRequestTopic
	for _, t := range req.Topics {
		if s.authorize(creq, acl.OpRead, acl.ResourceTopic, t.Topic) {
			sub.Topics = append(sub.Topics, t)
		} else {
			denied = append(denied, t)
		}
	}
	resp := creq.coord.groups.OffsetDelete(&sub)
	for _, t := range denied {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteResponseTopicPartition{Partition: p.Partition, ErrorCode: kerr.TopicAuthorizationFailed.Code})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
