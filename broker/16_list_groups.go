package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// ListGroups: v0-5
//
// Behavior: coordinator.GroupCoordinator.ListGroups.
//
// Version notes:
// * v3: flexible
// * v4: StatesFilter (KIP-518)
// * v5: TypesFilter and GroupType (KIP-848)

func (s *Server) handleListGroups(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.ListGroups(creq.Body.(*kmsg.ListGroupsRequest)), nil
}
