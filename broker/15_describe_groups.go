package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// DescribeGroups: v0-6
//
// Behavior: coordinator.GroupCoordinator.DescribeGroups (Kafka's
// GroupMetadataManager.describeGroups).
//
// With an authorizer: DESCRIBE on each group, else GROUP_AUTHORIZATION_FAILED
// for it; AuthorizedOperations are the principal's.
//
// Version notes:
// * v3: AuthorizedOperations (every group operation without an authorizer)
// * v4: InstanceID of members
// * v5: flexible
// * v6: ErrorMessage; GROUP_ID_NOT_FOUND for unknown groups (KIP-1043)

func (s *Server) handleDescribeGroups(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DescribeGroupsRequest)
	resp := creq.coord.groups.DescribeGroups(req)
	if s.authz == nil {
		return resp, nil
	}
	// Describing is read-only: the answer is filtered afterwards.
	for i := range resp.Groups {
		g := &resp.Groups[i]
		if !s.authorize(creq, acl.OpDescribe, acl.ResourceGroup, g.Group) {
			ng := kmsg.NewDescribeGroupsResponseGroup()
			ng.Group, ng.ErrorCode = g.Group, kerr.GroupAuthorizationFailed.Code
			*g = ng
		} else if req.IncludeAuthorizedOperations {
			g.AuthorizedOperations = s.authorizedOperations(creq, acl.ResourceGroup, g.Group)
		}
	}
	return resp, nil
}
