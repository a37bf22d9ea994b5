package protocol

import (
	"errors"
	"fmt"
	"time"

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
//     0, 1, 2, ... (INVALID_RECORD / CORRUPT_MESSAGE);
//   - on a compacted topic (cleanup.policy has compact) every record has a
//     key (INVALID_RECORD, LogValidator.validateKey);
//   - on a CreateTime topic, every record's timestamp lies within
//     message.timestamp.before.max.ms / after.max.ms of now
//     (INVALID_TIMESTAMP, LogValidator.validateTimestamp).
//
// cfg is the topic's effective config. Nothing is modified. The returned
// error wraps a *kerr.Error.
func ValidateProduceBatch(records []byte, cfg storage.LogConfig, now time.Time) (storage.BatchHeader, error) {
	maxMessageBytes := cfg.MaxMessageBytes
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

	checkTime := cfg.MessageTimestampType != "LogAppendTime"
	compacted := cfg.CompactEnabled()
	nowMs := now.UnixMilli()
	// The failing record is kept by value: taking r's address would move
	// every record of every batch to the heap.
	var (
		next               int64
		bad                storage.Record
		badOffset, badTime bool
		noKey              []int32 // indexes of keyless records in the batch
	)
	err = storage.RecordsWithoutHeaders(records, func(r storage.Record) bool {
		switch {
		case r.Offset != next:
			bad, badOffset = r, true
			return false
		case compacted && r.Key == nil:
			noKey = append(noKey, int32(next))
		case checkTime && timestampOutOfRange(r.Timestamp, nowMs, cfg):
			bad, badTime = r, true
			return false
		}
		next++
		return true
	})
	switch {
	case err != nil:
		return h, invalid(kerr.CorruptMessage, err.Error())
	case badOffset:
		return h, invalid(kerr.InvalidRecord, fmt.Sprintf("Record has offset delta %d where %d was expected.", bad.Offset, next))
	case len(noKey) > 0:
		// LogValidator.validateKey and processRecordErrors: one record error per
		// keyless record; the caller names the partition.
		ve := &ValidationError{Err: kerr.InvalidRecord}
		for _, i := range noKey {
			ve.RecordErrors = append(ve.RecordErrors, RecordError{BatchIndex: i, Message: "Compacted topic cannot accept message without key in topic partition %s."})
		}
		ve.Message = fmt.Sprintf("One or more records have been rejected due to %d record errors in total, and only showing the first three errors at most: %v",
			len(noKey), noKey[:min(len(noKey), 3)])
		return h, ve
	case badTime:
		return h, invalid(kerr.InvalidTimestamp, fmt.Sprintf("Timestamp %d of record %d is out of range: it must be within %d ms before and %d ms after the broker's time %d.",
			bad.Timestamp, bad.Offset, cfg.MessageTimestampBeforeMaxMs, cfg.MessageTimestampAfterMaxMs, nowMs))
	case next != int64(h.RecordCount):
		return h, invalid(kerr.InvalidRecord, fmt.Sprintf("Record batch declares %d records but holds %d.", h.RecordCount, next))
	}
	return h, nil
}

// timestampOutOfRange mirrors LogValidator.validateTimestamp for CreateTime,
// without overflowing on the Long.MAX_VALUE defaults.
func timestampOutOfRange(ts, now int64, cfg storage.LogConfig) bool {
	if ts < now && now-ts > cfg.MessageTimestampBeforeMaxMs {
		return true
	}
	return ts > now && ts-now > cfg.MessageTimestampAfterMaxMs
}

// ValidationError is a refused batch: the Kafka error plus the message that
// Produce v8+ returns in ErrorMessage, and the records at fault (Produce v8+
// RecordErrors, KIP-467).
type ValidationError struct {
	Err          *kerr.Error
	Message      string
	RecordErrors []RecordError
}

// RecordError names one refused record by its index in the batch; Message may
// hold one %s for the topic partition ("topic-0").
type RecordError struct {
	BatchIndex int32
	Message    string
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
