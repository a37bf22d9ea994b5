package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// notCoordinator answers, in a cluster, a group or transaction request
// that reached a broker which does not coordinate groups and transactions
// (creq.coord is nil: only the active controller runs them) as Kafka's
// coordinators answer for keys they do not own: NOT_COORDINATOR for each
// key, so the client looks the coordinator up again, and an empty list for
// ListGroups and ListTransactions, which clients send to every broker. ok
// is false when the request is for this broker to handle. A key the
// principal may not use gets the authorization error instead, since Kafka
// authorizes before it routes (keyDenied).
func (s *Server) notCoordinator(creq *clientReq) (kmsg.Response, bool) {
	if s.cluster == nil || creq.coord != nil {
		return nil, false
	}
	code := kerr.NotCoordinator.Code
	groupCode := func(op acl.Operation, group string) int16 {
		if !s.authorize(creq, op, acl.ResourceGroup, group) {
			return kerr.GroupAuthorizationFailed.Code
		}
		return code
	}
	switch req := creq.Body.(type) {
	case *kmsg.ListGroupsRequest, *kmsg.ListTransactionsRequest:
		return req.ResponseKind(), true
	case *kmsg.DescribeGroupsRequest:
		resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
		for _, g := range req.Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, groupCode(acl.OpDescribe, g)
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, true
	case *kmsg.DeleteGroupsRequest:
		resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, g := range req.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, groupCode(acl.OpDelete, g)
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, true
	case *kmsg.ConsumerGroupDescribeRequest:
		resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
		for _, g := range req.Groups {
			rg := kmsg.NewConsumerGroupDescribeResponseGroup()
			rg.Group, rg.ErrorCode = g, groupCode(acl.OpDescribe, g)
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, true
	case *kmsg.DescribeTransactionsRequest:
		resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
		for _, id := range req.TransactionalIDs {
			ts := kmsg.NewDescribeTransactionsResponseTransactionState()
			ts.TransactionalID, ts.ErrorCode = id, code
			if !s.authorize(creq, acl.OpDescribe, acl.ResourceTransactionalID, id) {
				ts.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			}
			resp.TransactionStates = append(resp.TransactionStates, ts)
		}
		return resp, true
	case *kmsg.OffsetFetchRequest:
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = code
		if req.Version < 8 {
			resp.ErrorCode = groupCode(acl.OpDescribe, req.Group)
		}
		for _, g := range req.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, groupCode(acl.OpDescribe, g.Group)
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, true
	}
	switch req := creq.Body.(type) {
	case *kmsg.InitProducerIDRequest:
		if req.TransactionalID == nil {
			return nil, false // any broker hands out idempotent producer ids
		}
	case *kmsg.AddPartitionsToTxnRequest, *kmsg.JoinGroupRequest, *kmsg.SyncGroupRequest, *kmsg.HeartbeatRequest, *kmsg.LeaveGroupRequest,
		*kmsg.OffsetCommitRequest, *kmsg.TxnOffsetCommitRequest, *kmsg.OffsetDeleteRequest,
		*kmsg.ConsumerGroupHeartbeatRequest, *kmsg.AddOffsetsToTxnRequest, *kmsg.EndTxnRequest:
	default:
		return nil, false
	}
	if denied := s.keyDenied(creq); denied != nil {
		code = denied.Code
	}
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
		return txnOffsetCommitError(creq.Body.(*kmsg.TxnOffsetCommitRequest), code), true
	case *kmsg.AddPartitionsToTxnResponse:
		if resp.Version >= 4 {
			resp.ErrorCode = code // batched, from a broker
			break
		}
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

// keyDenied is the authorization error of a single-key group or
// transaction request, checked as its handler checks it, or nil.
func (s *Server) keyDenied(creq *clientReq) *kerr.Error {
	if s.authz == nil {
		return nil
	}
	group := func(op acl.Operation, g string) *kerr.Error {
		if !s.authorize(creq, op, acl.ResourceGroup, g) {
			return kerr.GroupAuthorizationFailed
		}
		return nil
	}
	txnID := func(id string) *kerr.Error {
		if !s.authorize(creq, acl.OpWrite, acl.ResourceTransactionalID, id) {
			return kerr.TransactionalIDAuthorizationFailed
		}
		return nil
	}
	switch req := creq.Body.(type) {
	case *kmsg.JoinGroupRequest:
		return group(acl.OpRead, req.Group)
	case *kmsg.SyncGroupRequest:
		return group(acl.OpRead, req.Group)
	case *kmsg.HeartbeatRequest:
		return group(acl.OpRead, req.Group)
	case *kmsg.LeaveGroupRequest:
		return group(acl.OpRead, req.Group)
	case *kmsg.OffsetCommitRequest:
		return group(acl.OpRead, req.Group)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return group(acl.OpRead, req.Group)
	case *kmsg.OffsetDeleteRequest:
		return group(acl.OpDelete, req.Group)
	case *kmsg.InitProducerIDRequest:
		return txnID(*req.TransactionalID) // only transactional ones are routed
	case *kmsg.EndTxnRequest:
		return txnID(req.TransactionalID)
	case *kmsg.AddOffsetsToTxnRequest:
		if err := txnID(req.TransactionalID); err != nil {
			return err
		}
		return group(acl.OpRead, req.Group)
	case *kmsg.TxnOffsetCommitRequest:
		if err := txnID(req.TransactionalID); err != nil {
			return err
		}
		return group(acl.OpRead, req.Group)
	case *kmsg.AddPartitionsToTxnRequest:
		if req.Version >= 4 {
			if !s.authorizeCluster(creq, acl.OpClusterAction) {
				return kerr.ClusterAuthorizationFailed
			}
			return nil
		}
		return txnID(req.TransactionalID)
	}
	return nil
}
