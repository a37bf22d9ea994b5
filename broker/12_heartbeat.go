package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// Heartbeat: v0-4
//
// Behavior: coordinator.GroupCoordinator.Heartbeat (Kafka's
// classicGroupHeartbeat).
//
// Version notes:
// * v3: InstanceID (KIP-345)
// * v4: flexible

func (s *Server) handleHeartbeat(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.Heartbeat(creq.Body.(*kmsg.HeartbeatRequest)), nil
}
