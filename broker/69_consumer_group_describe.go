package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// ConsumerGroupDescribe: v0-1
//
// Behavior: coordinator.GroupCoordinator.ConsumerGroupDescribe (Kafka's
// GroupMetadataManager.consumerGroupDescribe): group and assignment epochs,
// the assignor, members with their current and target assignments.
// Classic groups are GROUP_ID_NOT_FOUND ("is not a consumer group"), as in
// Kafka; DescribeGroups describes those.
//
// Version notes:
// * v1: MemberType (always 1: kbroker has no classic members in consumer
//   groups)
//
// With an authorizer: DESCRIBE on each group, else GROUP_AUTHORIZATION_FAILED
// for it; AuthorizedOperations are the principal's.

func (s *Server) handleConsumerGroupDescribe(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.ConsumerGroupDescribeRequest)
	resp := creq.coord.groups.ConsumerGroupDescribe(req)
	if s.authz == nil {
		return resp, nil
	}
	for i := range resp.Groups {
		g := &resp.Groups[i]
		if !s.authorize(creq, acl.OpDescribe, acl.ResourceGroup, g.Group) {
			ng := kmsg.NewConsumerGroupDescribeResponseGroup()
			ng.Group, ng.ErrorCode = g.Group, kerr.GroupAuthorizationFailed.Code
			*g = ng
		} else if req.IncludeAuthorizedOperations {
			g.AuthorizedOperations = s.authorizedOperations(creq, acl.ResourceGroup, g.Group)
		}
	}
	return resp, nil
}
