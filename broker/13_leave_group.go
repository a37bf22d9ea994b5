package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// LeaveGroup: v0-5
//
// Behavior: coordinator.GroupCoordinator.LeaveGroup (Kafka's
// classicGroupLeave).
//
// With an authorizer: READ on the group, else GROUP_AUTHORIZATION_FAILED.
//
// Version notes:
// * v3: batched Members with InstanceID (KIP-345)
// * v4: flexible
// * v5: Reason (KIP-800)

func (s *Server) handleLeaveGroup(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.LeaveGroupRequest)
	if !s.authorize(creq, acl.OpRead, acl.ResourceGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	return creq.coord.groups.LeaveGroup(req), nil
}
