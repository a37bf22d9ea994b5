package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// DeleteGroups: v0-2
//
// Behavior: coordinator.GroupCoordinator.DeleteGroups: empty groups are
// deleted with their offsets; NON_EMPTY_GROUP otherwise.
//
// Version notes:
// * v2: flexible
//
// With an authorizer: DELETE on each group, else GROUP_AUTHORIZATION_FAILED
// for it.

func (s *Server) handleDeleteGroups(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DeleteGroupsRequest)
	if s.authz == nil {
		return creq.coord.groups.DeleteGroups(req), nil
	}
	var denied []string
	sub := *req
	sub.Groups = nil
	for _, g := range req.Groups {
		if s.authorize(creq, acl.OpDelete, acl.ResourceGroup, g) {
			sub.Groups = append(sub.Groups, g)
		} else {
			denied = append(denied, g)
		}
	}
	resp := creq.coord.groups.DeleteGroups(&sub)
	for _, g := range denied {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group, rg.ErrorCode = g, kerr.GroupAuthorizationFailed.Code
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}
