package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// LeaveGroup: v0-5
//
// Behavior: coordinator.GroupCoordinator.LeaveGroup (Kafka's
// classicGroupLeave).
//
// Version notes:
// * v3: batched Members with InstanceID (KIP-345)
// * v4: flexible
// * v5: Reason (KIP-800)

func (s *Server) handleLeaveGroup(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.LeaveGroup(creq.Body.(*kmsg.LeaveGroupRequest)), nil
}
