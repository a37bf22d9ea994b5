package protocol

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/storage"
)

// ValidateProduceBatch checks the records of one partition of a Produce
// request (v3+) before they reach the log, mirroring Kafka's
// ProduceRequest.validateRecords and LogValidator:
//
//   - exactly one whole RecordBatch of magic 2 (INVALID_RECORD otherwise);
//   - a truncated batch or a CRC-32C mismatch is CORRUPT_MESSAGE;
//   - a batch over max.message.bytes is MESSAGE_TOO_LARGE;
//   - the base offset must be 0, the record count must match the offset
//     range, clients may not write control batches, and an idempotent batch
//     needs a sequence (INVALID_RECORD);
//   - every record decodes (decompressing if needed), with offset deltas
//     0, 1, 2, ... (INVALID_RECORD / CORRUPT_MESSAGE).
//
// Nothing is modified. The returned error wraps a *kerr.Error.
func ValidateProduceBatch(records []byte, maxMessageBytes int32) (storage.BatchHeader, error) {
	if len(records) == 0 {
		return storage.BatchHeader{}, invalid(kerr.InvalidRecord, "Produce requests with version 3 and above must contain exactly one record batch.")
	}
	if len(records) < storage.BatchHeaderSize {
		return storage.BatchHeader{}, invalid(kerr.CorruptMessage, "Record batch is truncated.")
	}
	if magic := int8(records[16]); magic != 2 {
		return storage.BatchHeader{}, invalid(kerr.InvalidRecord, fmt.Sprintf("Produce requests with version 3 and above must contain record batches with magic 2, not %d.", magic))
	}
	h, err := storage.ParseBatchHeader(records)
	if err != nil {
		return h, invalid(kerr.CorruptMessage, err.Error())
	}
	switch size := h.Size(); {
	case size > len(records):
		return h, invalid(kerr.CorruptMessage, "Record batch is truncated.")
	case size < len(records):
		return h, invalid(kerr.InvalidRecord, "Produce requests with version 3 and above must contain exactly one record batch.")
	case size > int(maxMessageBytes):
		return h, invalid(kerr.MessageTooLarge, fmt.Sprintf("The record batch is %d bytes, larger than max.message.bytes (%d).", size, maxMessageBytes))
	}
	if err := storage.VerifyBatchCRC(records); err != nil {
		return h, invalid(kerr.CorruptMessage, "Record batch CRC-32C does not match its contents.")
	}
	switch {
	case h.BaseOffset != 0:
		return h, invalid(kerr.InvalidRecord, fmt.Sprintf("The base offset of the record batch should be 0, but it is %d.", h.BaseOffset))
	case h.RecordCount <= 0 || h.LastOffsetDelta < 0 || int64(h.LastOffsetDelta)+1 != int64(h.RecordCount):
		return h, invalid(kerr.InvalidRecord, fmt.Sprintf("Inconsistent record count %d and last offset delta %d.", h.RecordCount, h.LastOffsetDelta))
	case h.IsControl():
		return h, invalid(kerr.InvalidRecord, "Clients are not allowed to write control records.")
	case h.ProducerID >= 0 && h.BaseSequence < 0:
		return h, invalid(kerr.InvalidRecord, fmt.Sprintf("Invalid sequence number %d for producer id %d.", h.BaseSequence, h.ProducerID))
	}

	var next int64
	var badOffset *storage.Record
	err = storage.Records(records, func(r storage.Record) bool {
		if r.Offset != next {
			badOffset = &r
			return false
		}
		next++
		return true
	})
	switch {
	case err != nil:
		return h, invalid(kerr.CorruptMessage, err.Error())
	case badOffset != nil:
		return h, invalid(kerr.InvalidRecord, fmt.Sprintf("Record has offset delta %d where %d was expected.", badOffset.Offset, next))
	case next != int64(h.RecordCount):
		return h, invalid(kerr.InvalidRecord, fmt.Sprintf("Record batch declares %d records but holds %d.", h.RecordCount, next))
	}
	return h, nil
}

// ValidationError is a refused batch: the Kafka error plus the message that
// Produce v8+ returns in ErrorMessage.
type ValidationError struct {
	Err     *kerr.Error
	Message string
}

func (e *ValidationError) Error() string { return e.Err.Message + ": " + e.Message }
func (e *ValidationError) Unwrap() error { return e.Err }

func invalid(err *kerr.Error, msg string) error { return &ValidationError{Err: err, Message: msg} }

// ErrorMessage returns the text a response's ErrorMessage field should carry
// for err: a ValidationError's message, or err's text.
func ErrorMessage(err error) string {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Message
	}
	return err.Error()
}
