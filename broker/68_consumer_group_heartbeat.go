package broker

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// ConsumerGroupHeartbeat: v0-1
//
// Behavior: coordinator.GroupCoordinator.ConsumerGroupHeartbeat (Kafka's
// GroupMetadataManager.consumerGroupHeartbeat), the KIP-848 rebalance
// protocol: the broker assigns partitions (uniform or range assignor) and
// reconciles each member incrementally, revocation before reassignment.
// * Not advertised, and UNSUPPORTED_VERSION, when "consumer" is not in
//   group.coordinator.rebalance.protocols.
// * A non-empty classic group of the same id is GROUP_ID_NOT_FOUND: there
//   is no online migration between protocols.
//
// Version notes:
// * v1: the client generates its member id; SubscribedTopicRegex (KIP-848
//   GA in Kafka 4.0), resolved by the broker
//
// With an authorizer: READ on the group (GROUP_AUTHORIZATION_FAILED) and
// DESCRIBE on every subscribed topic (TOPIC_AUTHORIZATION_FAILED).

func (s *Server) handleConsumerGroupHeartbeat(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.ConsumerGroupHeartbeatRequest)
	code := int16(0)
	switch {
	case !s.authorize(creq, acl.OpRead, acl.ResourceGroup, req.Group):
		code = kerr.GroupAuthorizationFailed.Code
	case s.authz != nil && len(req.SubscribedTopicNames) > 0:
		// Clients may not learn of topics they cannot DESCRIBE.
		describable := s.authorizedTopics(creq, acl.OpDescribe, slices.Values(req.SubscribedTopicNames))
		for _, t := range req.SubscribedTopicNames {
			if !describable.has(t) {
				code = kerr.TopicAuthorizationFailed.Code
			}
		}
	}
	if code != 0 {
		resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode = code
		return resp, nil
	}
	return creq.coord.groups.ConsumerGroupHeartbeat(creq.requestContext(), req), nil
}
