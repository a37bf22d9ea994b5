package broker

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// OffsetFetch: v1-10
//
// Behavior: coordinator.GroupCoordinator.OffsetFetch (Kafka's
// OffsetMetadataManager.fetchOffsets).
//
// With an authorizer (KafkaApis.handleOffsetFetchRequest): DESCRIBE on
// each group, else GROUP_AUTHORIZATION_FAILED for it; a named topic
// without DESCRIBE gets TOPIC_AUTHORIZATION_FAILED on its partitions, and
// when all topics are asked for, such topics are left out.
//
// Version notes:
// * v2: null topics means all; top-level ErrorCode
// * v5: leader epoch
// * v7: RequireStable (KIP-447)
// * v8: many groups per request
// * v9: MemberID and MemberEpoch (KIP-848)
// * v10: topic ids

func (s *Server) handleOffsetFetch(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.OffsetFetchRequest)
	resp := creq.coord.groups.OffsetFetch(req)
	if s.authz == nil {
		return resp, nil
	}
	// Offsets are read-only: the answer is filtered afterwards.
	gcode, tcode := kerr.GroupAuthorizationFailed.Code, kerr.TopicAuthorizationFailed.Code
	if req.Version < 8 {
		if !s.authorize(creq, acl.OpDescribe, acl.ResourceGroup, req.Group) {
			*resp = *req.ResponseKind().(*kmsg.OffsetFetchResponse)
			resp.ErrorCode = gcode
			return resp, nil
		}
		resp.Topics = slices.DeleteFunc(resp.Topics, func(t kmsg.OffsetFetchResponseTopic) bool {
			return req.Topics == nil && !s.topicAllowed(creq, acl.OpDescribe, t.Topic, [16]byte{})
		})
		for i := range resp.Topics {
			if !s.topicAllowed(creq, acl.OpDescribe, resp.Topics[i].Topic, [16]byte{}) {
				for j := range resp.Topics[i].Partitions {
					p := &resp.Topics[i].Partitions[j]
					p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = -1, -1, nil, tcode
				}
			}
		}
		return resp, nil
	}
	for i := range resp.Groups {
		g := &resp.Groups[i]
		if !s.authorize(creq, acl.OpDescribe, acl.ResourceGroup, g.Group) {
			*g = kmsg.OffsetFetchResponseGroup{Group: g.Group, ErrorCode: gcode}
			continue
		}
		all := i < len(req.Groups) && req.Groups[i].Topics == nil
		g.Topics = slices.DeleteFunc(g.Topics, func(t kmsg.OffsetFetchResponseGroupTopic) bool {
			return all && !s.topicAllowed(creq, acl.OpDescribe, t.Topic, t.TopicID)
		})
		for j := range g.Topics {
			if !s.topicAllowed(creq, acl.OpDescribe, g.Topics[j].Topic, g.Topics[j].TopicID) {
				for k := range g.Topics[j].Partitions {
					p := &g.Topics[j].Partitions[k]
					p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = -1, -1, nil, tcode
				}
			}
		}
	}
	return resp, nil
}
