package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/txn"
)

// TxnOffsetCommit: v0-5
//
// Behavior (KafkaApis.handleTxnOffsetCommitRequest): the transaction must be
// Ongoing with the group added by AddOffsetsToTxn, or from v5 the group is
// added implicitly (txn.VerifyGroup; its error answers every partition);
// then coordinator.TxnOffsetCommit stages
// the offsets, invisible until the transaction commits (and dropped if it
// aborts). OffsetFetch with RequireStable answers UNSTABLE_OFFSET_COMMIT
// for them meanwhile.
//
// Version notes:
// * v2: CommittedLeaderEpoch
// * v3: flexible; GenerationID, MemberID, GroupInstanceID (KIP-447)
// * v4: PRODUCER_FENCED etc. as in the other v4 txn APIs
// * v5: transactions v2 clients
//
// With an authorizer: WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and READ on the group
// (GROUP_AUTHORIZATION_FAILED) for every partition; READ on each topic, else
// TOPIC_AUTHORIZATION_FAILED for its partitions and the rest committed.

func (s *Server) handleTxnOffsetCommit(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.TxnOffsetCommitRequest)
	switch {
	case !s.authorize(creq, acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID):
		return txnOffsetCommitError(req, kerr.TransactionalIDAuthorizationFailed.Code), nil
	case !s.authorize(creq, acl.OpRead, acl.ResourceGroup, req.Group):
		return txnOffsetCommitError(req, kerr.GroupAuthorizationFailed.Code), nil
	}
	var denied []kmsg.TxnOffsetCommitRequestTopic
	if s.authz != nil {
		sub := *req
		sub.Topics = nil
		for _, t := range req.Topics {
			if s.authorize(creq, acl.OpRead, acl.ResourceTopic, t.Topic) {
				sub.Topics = append(sub.Topics, t)
			} else {
				denied = append(denied, t)
			}
		}
		req = &sub
	}
	resp, err := s.txnOffsetCommit(creq, req)
	if len(denied) > 0 {
		deniedResp := txnOffsetCommitError(&kmsg.TxnOffsetCommitRequest{Version: req.Version, Topics: denied}, kerr.TopicAuthorizationFailed.Code)
		resp.Topics = append(resp.Topics, deniedResp.Topics...)
	}
	return resp, err
}

func (s *Server) txnOffsetCommit(creq *clientReq, req *kmsg.TxnOffsetCommitRequest) (*kmsg.TxnOffsetCommitResponse, error) {
	if err := creq.coord.txn.VerifyGroup(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, txn.TxnOffsetCommitOperation(req.Version)); err != nil {
		code := kerr.UnknownServerError.Code
		if ke, ok := err.(*kerr.Error); ok {
			code = ke.Code
		}
		return txnOffsetCommitError(req, code), nil
	}
	return creq.coord.groups.TxnOffsetCommit(req), nil
}

// txnOffsetCommitError answers every partition of req with code.
func txnOffsetCommitError(req *kmsg.TxnOffsetCommitRequest, code int16) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewTxnOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			sp.Partition, sp.ErrorCode = rp.Partition, code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
