package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// DescribeProducers: v0
//
// Behavior:
// * For each partition, the producers its log remembers (the partition's
//   ProducerStateManager): id, epoch, last sequence and timestamp, the
//   coordinator epoch of their last marker and where their open
//   transaction starts (-1 if none), as Kafka's
//   ReplicaManager.activeProducerState answers.
// * Errors per partition: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER.
//
// With an authorizer: READ on the topic, else
// TOPIC_AUTHORIZATION_FAILED.

func (s *Server) handleDescribeProducers(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DescribeProducersRequest)
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	readable := s.authorizedTopics(creq, acl.OpRead, namesOf(req.Topics, func(t kmsg.DescribeProducersRequestTopic) string { return t.Topic }))
	for _, rt := range req.Topics {
		t, _ := s.logs.Topic(rt.Topic)
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		for _, p := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = p
			if !readable.has(rt.Topic) {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			log, _, kerrv := s.leaderLog(t, p, -1)
			if kerrv != nil {
				sp.ErrorCode = kerrv.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			for _, e := range log.ProducerStates() {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID = e.ProducerID
				ap.ProducerEpoch = int32(e.ProducerEpoch)
				ap.LastSequence = -1
				if n := len(e.Batches); n > 0 {
					ap.LastSequence = e.Batches[n-1].LastSeq
				}
				ap.LastTimestamp = e.LastTimestamp
				ap.CoordinatorEpoch = e.CoordinatorEpoch
				ap.CurrentTxnStartOffset = e.CurrentTxnFirstOffset
				sp.ActiveProducers = append(sp.ActiveProducers, ap)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
