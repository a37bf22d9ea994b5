package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// notCoordinator answers, in a cluster, a request for one group or one
// transactional id that reached a broker not coordinating it (the key's
// __consumer_offsets partition is led elsewhere) with NOT_COORDINATOR, as
// Kafka's coordinators answer for a partition they do not own; the client
// looks the coordinator up again. ok is false when this broker is the
// coordinator, on one node, and for requests naming several keys (each
// coordinator answers for the keys it has).
func (s *Server) notCoordinator(creq *clientReq) (kmsg.Response, bool) {
	if s.cluster == nil {
		return nil, false
	}
	var key string
	switch req := creq.Body.(type) {
	case *kmsg.JoinGroupRequest:
		key = req.Group
	case *kmsg.SyncGroupRequest:
		key = req.Group
	case *kmsg.HeartbeatRequest:
		key = req.Group
	case *kmsg.LeaveGroupRequest:
		key = req.Group
	case *kmsg.OffsetCommitRequest:
		key = req.Group
	case *kmsg.TxnOffsetCommitRequest:
		key = req.Group
	case *kmsg.OffsetDeleteRequest:
		key = req.Group
	case *kmsg.ConsumerGroupHeartbeatRequest:
		key = req.Group
	case *kmsg.AddOffsetsToTxnRequest:
		key = req.TransactionalID
	case *kmsg.EndTxnRequest:
		key = req.TransactionalID
	case *kmsg.InitProducerIDRequest:
		if req.TransactionalID == nil {
			return nil, false // any broker hands out idempotent producer ids
		}
		key = *req.TransactionalID
	case *kmsg.AddPartitionsToTxnRequest:
		if req.Version >= 4 {
			return nil, false // batched by transaction, from brokers
		}
		key = req.TransactionalID
	default:
		return nil, false
	}
	if id, _, ok := s.cluster.coordinatorFor(key, creq.conn.listener.Name); ok && id == s.cfg.NodeID {
		return nil, false
	}
	code := kerr.NotCoordinator.Code
	resp := creq.Body.ResponseKind()
	switch resp := resp.(type) {
	case *kmsg.JoinGroupResponse:
		resp.ErrorCode = code
	case *kmsg.SyncGroupResponse:
		resp.ErrorCode = code
	case *kmsg.HeartbeatResponse:
		resp.ErrorCode = code
	case *kmsg.LeaveGroupResponse:
		resp.ErrorCode = code
	case *kmsg.OffsetDeleteResponse:
		resp.ErrorCode = code
	case *kmsg.ConsumerGroupHeartbeatResponse:
		resp.ErrorCode = code
	case *kmsg.AddOffsetsToTxnResponse:
		resp.ErrorCode = code
	case *kmsg.EndTxnResponse:
		resp.ErrorCode = code
	case *kmsg.InitProducerIDResponse:
		resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch = code, -1, -1
	case *kmsg.OffsetCommitResponse:
		for _, rt := range creq.Body.(*kmsg.OffsetCommitRequest).Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
	case *kmsg.TxnOffsetCommitResponse:
		for _, rt := range creq.Body.(*kmsg.TxnOffsetCommitRequest).Topics {
			st := kmsg.NewTxnOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
	case *kmsg.AddPartitionsToTxnResponse:
		for _, rt := range creq.Body.(*kmsg.AddPartitionsToTxnRequest).Topics {
			st := kmsg.NewAddPartitionsToTxnResponseTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				sp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				sp.Partition, sp.ErrorCode = p, code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
	}
	return resp, true
}
