package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// ConsumerGroupHeartbeat: v0-1
//
// Behavior: coordinator.GroupCoordinator.ConsumerGroupHeartbeat (Kafka's
// GroupMetadataManager.consumerGroupHeartbeat), the KIP-848 rebalance
// protocol: the broker assigns partitions (uniform or range assignor) and
// reconciles each member incrementally, revocation before reassignment.
// * Not advertised, and UNSUPPORTED_VERSION, when "consumer" is not in
//   group.coordinator.rebalance.protocols.
// * A non-empty classic group of the same id is GROUP_ID_NOT_FOUND: there
//   is no online migration between protocols.
//
// Version notes:
// * v1: the client generates its member id; SubscribedTopicRegex (KIP-848
//   GA in Kafka 4.0), resolved by the broker

func (s *Server) handleConsumerGroupHeartbeat(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.ConsumerGroupHeartbeat(creq.requestContext(), creq.Body.(*kmsg.ConsumerGroupHeartbeatRequest)), nil
}
