package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// SyncGroup: v0-5
//
// Behavior: coordinator.GroupCoordinator.SyncGroup (Kafka's
// classicGroupSync). A follower's request parks this connection until the
// leader's assignment arrives.
//
// With an authorizer: READ on the group, else GROUP_AUTHORIZATION_FAILED.
//
// Version notes:
// * v3: InstanceID (KIP-345)
// * v4: flexible
// * v5: ProtocolType and Protocol, checked against the group's

func (s *Server) handleSyncGroup(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.SyncGroupRequest)
	if !s.authorize(creq, acl.OpRead, acl.ResourceGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	return creq.coord.groups.SyncGroup(req), nil
}
