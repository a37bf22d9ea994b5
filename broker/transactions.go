package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/storage"
)

// Until the transaction coordinator is wired in, transactional producers are
// refused.

func (s *Server) initTransactionalProducer(req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	return resp
}

func (s *Server) verifyTransactionalProduce(req *kmsg.ProduceRequest, h storage.BatchHeader, topic string, partition int32) error {
	return kerr.InvalidTxnState
}
