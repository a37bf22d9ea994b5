package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// AddOffsetsToTxn: v0-4
//
// Behavior: txn.TransactionCoordinator.AddOffsetsToTxn: the group joins the
// producer's transaction (Kafka adds the group's __consumer_offsets
// partition), so that its TxnOffsetCommit offsets are committed or dropped
// with the transaction's markers.
//
// Version notes:
// * v2: PRODUCER_FENCED (KIP-588)
// * v3: flexible

func (s *Server) handleAddOffsetsToTxn(creq *clientReq) (kmsg.Response, error) {
	return creq.coord.txn.AddOffsetsToTxn(creq.Body.(*kmsg.AddOffsetsToTxnRequest)), nil
}
