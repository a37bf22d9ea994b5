package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// DescribeTransactions: v0
//
// Behavior: txn.TransactionCoordinator.DescribeTransactions: state,
// producer id and epoch, timeout, start time and partitions of each
// transactional id; TRANSACTIONAL_ID_NOT_FOUND for unknown ones.

func (s *Server) handleDescribeTransactions(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.txn.DescribeTransactions(creq.Body.(*kmsg.DescribeTransactionsRequest)), nil
}
