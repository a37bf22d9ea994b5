package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// Heartbeat: v0-4
//
// Behavior: coordinator.GroupCoordinator.Heartbeat (Kafka's
// classicGroupHeartbeat).
//
// With an authorizer: READ on the group, else GROUP_AUTHORIZATION_FAILED.
//
// Version notes:
// * v3: InstanceID (KIP-345)
// * v4: flexible

func (s *Server) handleHeartbeat(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.HeartbeatRequest)
	if !s.authorize(creq, acl.OpRead, acl.ResourceGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	return creq.coord.groups.Heartbeat(req), nil
}
