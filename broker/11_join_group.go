package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// JoinGroup: v2-9
//
// Behavior: coordinator.GroupCoordinator.JoinGroup (Kafka's
// GroupMetadataManager.classicGroupJoin). The request parks this
// connection until the join phase ends, as Kafka holds the response in
// purgatory.
//
// With an authorizer: READ on the group, else GROUP_AUTHORIZATION_FAILED.
//
// Version notes:
// * v4: MEMBER_ID_REQUIRED for a new member without an id (KIP-394)
// * v5: InstanceID, static membership (KIP-345)
// * v6: flexible
// * v7: ProtocolType and Protocol in the response
// * v8: Reason (KIP-800), logged by nobody
// * v9: SkipAssignment for a static leader that rejoined

func (s *Server) handleJoinGroup(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.JoinGroupRequest)
	if !s.authorize(creq, acl.OpRead, acl.ResourceGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		resp.Generation = -1
		return resp, nil
	}
	return creq.coord.groups.JoinGroup(creq.requestContext(), req), nil
}
