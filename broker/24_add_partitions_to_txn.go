package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// AddPartitionsToTxn: v0-5
//
// Behavior: txn.TransactionCoordinator.AddPartitionsToTxn (Kafka's
// TransactionCoordinator.handleAddPartitionsToTransaction): the partitions
// join the producer's transaction, which starts if it was Empty or
// complete; CONCURRENT_TRANSACTIONS while the previous one is still being
// completed, INVALID_PRODUCER_EPOCH / PRODUCER_FENCED for a zombie,
// UNKNOWN_TOPIC_OR_PARTITION per missing partition (the others then get
// OPERATION_NOT_ATTEMPTED).
//
// Version notes:
// * v3: flexible
// * v4: batched Transactions with VerifyOnly, sent by brokers (KIP-890)
// * v5: no change (transactions v2 clients)
//
// With an authorizer: v0-3 need WRITE on the
// transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and on each
// topic (TOPIC_AUTHORIZATION_FAILED, the rest OPERATION_NOT_ATTEMPTED);
// v4+, sent by brokers, CLUSTER_ACTION (CLUSTER_AUTHORIZATION_FAILED).

func (s *Server) handleAddPartitionsToTxn(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.AddPartitionsToTxnRequest)
	if s.authz == nil {
		return creq.coord.txn.AddPartitionsToTxn(req), nil
	}
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version >= 4 {
		if !s.authorizeCluster(creq, acl.OpClusterAction) {
			resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
			return resp, nil
		}
		return creq.coord.txn.AddPartitionsToTxn(req), nil
	}
	// One failed check fails the whole transaction's request: the
	// partitions that passed are OPERATION_NOT_ATTEMPTED.
	txnDenied := !s.authorize(creq, acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID)
	writable := s.authorizedTopics(creq, acl.OpWrite, namesOf(req.Topics, func(t kmsg.AddPartitionsToTxnRequestTopic) string { return t.Topic }))
	failed := txnDenied
	for _, t := range req.Topics {
		failed = failed || !writable.has(t.Topic)
	}
	if !failed {
		return creq.coord.txn.AddPartitionsToTxn(req), nil
	}
	for _, t := range req.Topics {
		code := kerr.OperationNotAttempted.Code
		switch {
		case txnDenied:
			code = kerr.TransactionalIDAuthorizationFailed.Code
		case !writable.has(t.Topic):
			code = kerr.TopicAuthorizationFailed.Code
		}
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rt.Partitions = append(rt.Partitions, kmsg.AddPartitionsToTxnResponseTopicPartition{Partition: p, ErrorCode: code})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
