package protocol

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/idempotence"
	"github.com/kbroker/kbroker/storage"
)

// storageErrors maps storage's sentinels to the Kafka errors clients
// understand; this is the only place the mapping lives (Redpanda's
// map_topic_error_code).
var storageErrors = []struct {
	err  error
	kerr *kerr.Error
}{
	{storage.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{storage.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{storage.ErrTopicExists, kerr.TopicAlreadyExists},
	{storage.ErrInvalidTopic, kerr.InvalidTopicException},
	{storage.ErrInvalidPartitions, kerr.InvalidPartitions},
	{storage.ErrInvalidConfig, kerr.InvalidConfig},
	{storage.ErrCorruptRecord, kerr.CorruptMessage},
	{storage.ErrRecordTooLarge, kerr.MessageTooLarge},
	{storage.ErrClosed, kerr.NotLeaderForPartition},
	{idempotence.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{idempotence.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{idempotence.ErrCoordinatorFenced, kerr.TransactionCoordinatorFenced},
}

// KafkaError returns the Kafka error for err: a wrapped *kerr.Error as is, a
// storage sentinel mapped, anything else UNKNOWN_SERVER_ERROR. nil is nil.
func KafkaError(err error) *kerr.Error {
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke
	}
	for _, m := range storageErrors {
		if errors.Is(err, m.err) {
			return m.kerr
		}
	}
	return kerr.UnknownServerError
}

// ErrorCode is KafkaError's code, 0 for nil.
func ErrorCode(err error) int16 {
	if ke := KafkaError(err); ke != nil {
		return ke.Code
	}
	return 0
}
