package broker

import "github.com/twmb/franz-go/pkg/kmsg"

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

func (s *Server) handleAddPartitionsToTxn(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.txn.AddPartitionsToTxn(creq.Body.(*kmsg.AddPartitionsToTxnRequest)), nil
}
