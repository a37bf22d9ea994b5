package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// SyncGroup: v0-5
//
// Behavior: coordinator.GroupCoordinator.SyncGroup (Kafka's
// classicGroupSync). A follower's request parks this connection until the
// leader's assignment arrives.
//
// Version notes:
// * v3: InstanceID (KIP-345)
// * v4: flexible
// * v5: ProtocolType and Protocol, checked against the group's

func (s *Server) handleSyncGroup(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.SyncGroup(creq.Body.(*kmsg.SyncGroupRequest)), nil
}
