package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// DeleteGroups: v0-2
//
// Behavior: coordinator.GroupCoordinator.DeleteGroups: empty groups are
// deleted with their offsets; NON_EMPTY_GROUP otherwise.
//
// Version notes:
// * v2: flexible

func (s *Server) handleDeleteGroups(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.DeleteGroups(creq.Body.(*kmsg.DeleteGroupsRequest)), nil
}
