package broker

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// ListGroups: v0-5
//
// Behavior: coordinator.GroupCoordinator.ListGroups.
//
// Version notes:
// * v3: flexible
// * v4: StatesFilter (KIP-518)
// * v5: TypesFilter and GroupType (KIP-848)
//
// With an authorizer: every group for DESCRIBE on the cluster, else the
// groups the principal may DESCRIBE (KafkaApis.handleListGroupsRequest).

func (s *Server) handleListGroups(creq *clientReq) (kmsg.Response, error) {
	resp := creq.coord.groups.ListGroups(creq.Body.(*kmsg.ListGroupsRequest))
	if s.authz != nil && !s.authorizeCluster(creq, acl.OpDescribe) {
		resp.Groups = slices.DeleteFunc(resp.Groups, func(g kmsg.ListGroupsResponseGroup) bool {
			return !s.authorize(creq, acl.OpDescribe, acl.ResourceGroup, g.Group)
		})
	}
	return resp, nil
}
