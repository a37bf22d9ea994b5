package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// InitProducerId: v0-5
//
// Behavior:
// * Without a transactional id (an idempotent producer): a producer id no
//   one has had, at epoch 0, from blocks reserved durably in meta.db
//   (idempotence.ProducerIDManager), so ids are never reused after a
//   restart. A ProducerID/ProducerEpoch sent along (KIP-360) is ignored and
//   a new id handed out, as Kafka's TransactionCoordinator does.
// * With a transactional id: the transaction coordinator bumps the epoch
//   (fencing zombies, aborting their open transaction) or hands out an id.
// * TransactionTimeoutMillis must be in (0, transaction.max.timeout.ms].
//
// Version notes:
// * v2: flexible
// * v3: ProducerID/ProducerEpoch to recover an existing producer (KIP-360)
// * v4: PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH (KIP-588)
// * v5: transactions v2 (KIP-890) clients; no change of fields
//
// With an authorizer: WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); without one, IDEMPOTENT_WRITE on
// the cluster or WRITE on some topic (CLUSTER_AUTHORIZATION_FAILED), as
// KafkaApis.handleInitProducerIdRequest.

func (s *Server) handleInitProducerID(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	switch {
	case req.TransactionalID != nil && !s.authorize(creq, acl.OpWrite, acl.ResourceTransactionalID, *req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	case req.TransactionalID == nil && !s.authorizeCluster(creq, acl.OpIdempotentWrite) &&
		!s.authorizeByResourceType(creq, acl.OpWrite, acl.ResourceTopic):
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
	}
	if resp.ErrorCode != 0 {
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return resp, nil
	}
	if req.TransactionalID != nil {
		return creq.coord.txn.InitProducerID(req), nil
	}
	id, err := s.producerIDs.NextProducerID()
	if err != nil {
		s.logger.Error("allocating a producer id", "err", err)
		resp.ErrorCode = kerr.UnknownServerError.Code
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}
