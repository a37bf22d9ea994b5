package storage

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test them with errors.Is; the broker maps them to Kafka
// error codes in one place (protocol), so storage carries no Kafka codes itself.
var (
	// ErrOffsetOutOfRange is returned when a read or DeleteRecords names an offset
	// outside [LogStartOffset, LogEndOffset] (Kafka OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("storage: offset out of range")

	// ErrUnknownTopic is returned for a topic that does not exist
	// (UNKNOWN_TOPIC_OR_PARTITION / UNKNOWN_TOPIC_ID).
	ErrUnknownTopic = errors.New("storage: unknown topic")

	// ErrTopicExists is returned by CreateTopic for a name already in use (TOPIC_ALREADY_EXISTS).
	ErrTopicExists = errors.New("storage: topic already exists")

	// ErrInvalidTopic is returned for an illegal topic name, or one that collides with
	// an existing topic once '.' and '_' are treated alike (INVALID_TOPIC_EXCEPTION).
	ErrInvalidTopic = errors.New("storage: invalid topic")

	// ErrInvalidPartitions is returned for a partition count < 1, or a CreatePartitions
	// that does not grow the topic (INVALID_PARTITIONS).
	ErrInvalidPartitions = errors.New("storage: invalid partitions")

	// ErrInvalidConfig wraps every rejected topic config value; the message names the
	// key (INVALID_CONFIG).
	ErrInvalidConfig = errors.New("storage: invalid config")

	// ErrCorruptRecord is returned for bytes that are not a well-formed RecordBatch v2:
	// short header, bad length, wrong magic, CRC mismatch, malformed records
	// (CORRUPT_MESSAGE).
	ErrCorruptRecord = errors.New("storage: corrupt record")

	// ErrRecordTooLarge is returned by AppendAsLeader for a batch larger than
	// max.message.bytes or an append larger than segment.bytes (MESSAGE_TOO_LARGE /
	// RECORD_LIST_TOO_LARGE), as UnifiedLog.analyzeAndValidateRecords and
	// UnifiedLog.append do.
	ErrRecordTooLarge = errors.New("storage: record too large")

	// ErrUnexpectedAppendOffset is returned by AppendAsFollower when the batches do
	// not continue the log: the first one not already present does not start at
	// the log end offset, or a batch does not start right after the one before it
	// (Kafka UnexpectedAppendOffsetException / OffsetsOutOfOrderException, both
	// UNKNOWN_SERVER_ERROR). The log is unchanged; the caller logs it and fetches
	// again, or truncates first. The error is an *UnexpectedAppendOffsetError.
	ErrUnexpectedAppendOffset = errors.New("storage: unexpected append offset")

	// ErrClosed is returned by operations on a closed Log or LogManager (a deleted
	// topic's logs are closed too).
	ErrClosed = errors.New("storage: closed")

	// ErrCorruptIndex describes an offset or time index that failed its sanity check.
	// Recovery rebuilds such an index from the log, so callers normally never see it.
	ErrCorruptIndex = errors.New("storage: corrupt index")
)

// UnexpectedAppendOffsetError says where a follower append did not fit. When a
// leader's log start offset lies inside a batch, a follower fetching from it
// gets that whole batch; Kafka's Partition then starts the empty log at the
// batch's first offset (TruncateFullyAndStartAt(FirstOffset)) and appends again.
type UnexpectedAppendOffsetError struct {
	FirstOffset  int64 // base offset of the offending batch
	LastOffset   int64 // its last offset
	LogEndOffset int64 // where it should have started
}

func (e *UnexpectedAppendOffsetError) Error() string {
	return fmt.Sprintf("%v: batch [%d, %d] does not continue the log at %d", ErrUnexpectedAppendOffset, e.FirstOffset, e.LastOffset, e.LogEndOffset)
}

func (e *UnexpectedAppendOffsetError) Unwrap() error { return ErrUnexpectedAppendOffset }
