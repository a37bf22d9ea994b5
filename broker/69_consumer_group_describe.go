package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// ConsumerGroupDescribe: v0-1
//
// Behavior: coordinator.GroupCoordinator.ConsumerGroupDescribe (Kafka's
// GroupMetadataManager.consumerGroupDescribe): group and assignment epochs,
// the assignor, members with their current and target assignments.
// Classic groups are GROUP_ID_NOT_FOUND ("is not a consumer group"), as in
// Kafka; DescribeGroups describes those.
//
// Version notes:
// * v1: MemberType (always 1: kbroker has no classic members in consumer
//   groups)

func (s *Server) handleConsumerGroupDescribe(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.groups.ConsumerGroupDescribe(creq.Body.(*kmsg.ConsumerGroupDescribeRequest)), nil
}
