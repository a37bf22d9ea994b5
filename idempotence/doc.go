// Package idempotence keeps what makes producer retries safe (Kafka's
// ProducerStateManager): per partition, for every producer id, its epoch
// and the sequence numbers and offsets of its last five batches. A batch
// that repeats one of them is a retry and is answered with the original
// offsets instead of being appended again; a batch that skips sequence
// numbers is refused with OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is
// a fenced zombie.
//
// The state is rebuilt after a restart from the latest snapshot file
// (<offset>.snapshot, Kafka's format) plus the batches after it in the log.
package idempotence
