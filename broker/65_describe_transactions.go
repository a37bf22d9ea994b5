package broker

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// DescribeTransactions: v0
//
// Behavior: txn.TransactionCoordinator.DescribeTransactions: state,
// producer id and epoch, timeout, start time and partitions of each
// transactional id; TRANSACTIONAL_ID_NOT_FOUND for unknown ones.
//
// With an authorizer: DESCRIBE on each transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); its topics the principal may
// not DESCRIBE are left out (KafkaApis.handleDescribeTransactionsRequest).

func (s *Server) handleDescribeTransactions(creq *clientReq) (kmsg.Response, error) {
	resp := creq.coord.txn.DescribeTransactions(creq.Body.(*kmsg.DescribeTransactionsRequest))
	if s.authz == nil {
		return resp, nil
	}
	for i := range resp.TransactionStates {
		ts := &resp.TransactionStates[i]
		if !s.authorize(creq, acl.OpDescribe, acl.ResourceTransactionalID, ts.TransactionalID) {
			n := kmsg.NewDescribeTransactionsResponseTransactionState()
			n.TransactionalID, n.ErrorCode = ts.TransactionalID, kerr.TransactionalIDAuthorizationFailed.Code
			*ts = n
			continue
		}
		// Topics the principal may not DESCRIBE are left out.
		ts.Topics = slices.DeleteFunc(ts.Topics, func(t kmsg.DescribeTransactionsResponseTransactionStateTopic) bool {
			return !s.authorize(creq, acl.OpDescribe, acl.ResourceTopic, t.Topic)
		})
	}
	return resp, nil
}
