package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
	"github.com/kbroker/kbroker/storage"
)

// WriteTxnMarkers: v1
//
// Behavior (KafkaApis.handleWriteTxnMarkersRequest): the inter-broker API a
// transaction coordinator uses to end a transaction in the partitions a
// broker leads. On one node kbroker's coordinator appends its markers directly; this
// serves the API as Kafka 4 advertises it, for tools that write markers
// (e.g. to abort a hanging transaction): each marker is appended to its
// partitions, and a marker naming __consumer_offsets completes the
// producer's staged offsets in every group.
// * In a cluster, kbroker's coordinators send it to each partition's leader,
//   which answers once the marker is committed (the ISR has it), as Kafka
//   appends markers with acks=all; NOT_LEADER_OR_FOLLOWER elsewhere.
// * Errors per partition: UNKNOWN_TOPIC_OR_PARTITION, INVALID_PRODUCER_EPOCH
//   for a marker older than the producer's epoch,
//   TRANSACTION_COORDINATOR_FENCED for an older coordinator epoch.
//
// Version notes:
// * v1: flexible; v0 was removed in Kafka 4 (KIP-896)
//
// With an authorizer: CLUSTER_ACTION on the cluster, else every
// partition is CLUSTER_AUTHORIZATION_FAILED.

func (s *Server) handleWriteTxnMarkers(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.WriteTxnMarkersRequest)
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	clusterAction := s.authorizeCluster(creq, acl.OpClusterAction)
	for _, rm := range req.Markers {
		m := storage.EndTxnMarker{ProducerID: rm.ProducerID, ProducerEpoch: rm.ProducerEpoch, CoordinatorEpoch: rm.CoordinatorEpoch, Commit: rm.Committed}
		sm := kmsg.NewWriteTxnMarkersResponseMarker()
		sm.ProducerID = rm.ProducerID
		for _, rt := range rm.Topics {
			st := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				sp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				sp.Partition = p
				if sp.ErrorCode = kerr.ClusterAuthorizationFailed.Code; clusterAction {
					sp.ErrorCode = s.writeTxnMarkerFor(creq.coord, rt.Topic, p, m)
				}
				st.Partitions = append(st.Partitions, sp)
			}
			sm.Topics = append(sm.Topics, st)
		}
		resp.Markers = append(resp.Markers, sm)
	}
	return resp, nil
}

// writeTxnMarkerFor writes one marker; coord, the coordinators the request
// reached, completes staged offsets for a marker to __consumer_offsets.
func (s *Server) writeTxnMarkerFor(coord *coordinators, topic string, partition int32, m storage.EndTxnMarker) int16 {
	if topic == offsetsTopic {
		if coord == nil {
			return kerr.NotCoordinator.Code
		}
		if err := coord.groups.CompleteTxnOffsets(m.ProducerID, nil, m.Commit); err != nil {
			return kerr.UnknownServerError.Code
		}
		return 0
	}
	t, ok := s.logs.Topic(topic)
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return kerr.UnknownTopicOrPartition.Code
	}
	s.txnAppends.Lock()
	wait, err := s.appendTxnMarkerAsLeader(t, partition, m)
	s.txnAppends.Unlock()
	if err == nil {
		err = wait()
	}
	return protocol.ErrorCode(err)
}
