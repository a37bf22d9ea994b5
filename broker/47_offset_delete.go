package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetDelete: v0
//
// Behavior: coordinator.GroupCoordinator.OffsetDelete (Kafka's
// OffsetMetadataManager.deleteOffsets).

func (s *Server) handleOffsetDelete(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.OffsetDelete(creq.Body.(*kmsg.OffsetDeleteRequest)), nil
}
