package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetFetch: v1-10
//
// Behavior: coordinator.GroupCoordinator.OffsetFetch (Kafka's
// OffsetMetadataManager.fetchOffsets).
//
// Version notes:
// * v2: null topics means all; top-level ErrorCode
// * v5: leader epoch
// * v7: RequireStable (KIP-447)
// * v8: many groups per request
// * v9: MemberID and MemberEpoch (KIP-848)
// * v10: topic ids

func (s *Server) handleOffsetFetch(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.OffsetFetch(creq.Body.(*kmsg.OffsetFetchRequest)), nil
}
