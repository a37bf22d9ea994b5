// Package storage keeps kbroker's partition logs and topic catalog on disk, in
// Kafka's own file layout and with Kafka's names (LogManager, UnifiedLog as Log,
// LogSegment, FileRecords, OffsetIndex, TimeIndex, LeaderEpochFileCache, LogConfig),
// so that one search finds a concept in both codebases.
//
// # On disk
//
//	<dir>/meta.db                     bbolt: topics (name -> id, partitions, config
//	                                  overrides), log start offsets, and buckets of
//	                                  other packages
//	<dir>/.kafka_cleanshutdown        present only while the broker is cleanly stopped
//	<dir>/<topic>-<partition>/
//	    00000000000000000000.log      RecordBatches exactly as on the wire (magic 2),
//	                                  with base offsets and leader epochs stamped
//	    00000000000000000000.index    OffsetIndex: 8-byte entries (relative offset u32,
//	                                  position u32), big endian, sparse
//	    00000000000000000000.timeindex TimeIndex: 12-byte entries (timestamp i64,
//	                                  relative offset u32), big endian, sparse
//	    00000000000004718592.log ...  the next segment, named by its base offset
//	    leader-epoch-checkpoint       LeaderEpochFileCache, Kafka's text format
//	<dir>/cleaner-offset-checkpoint   LogCleaner: each compacted log's first dirty
//	                                  offset, Kafka's text format
//	<dir>/<topic>-<p>.<uid>-delete/   a deleted topic's partition, being removed
//
// A segment's base offset is its first batch's base offset and the previous
// segment's end. Segments roll at segment.bytes, segment.ms, a full index, or when
// offsets would no longer fit the indexes' 32-bit relative offsets. Index entries
// are kept in memory (no mmap) and appended to their files as they are made; the
// indexes carry no checksum and are rebuilt from the .log whenever they fail a
// sanity check.
//
// # Writes and reads
//
// An append is one pwrite of the producer's batches into the active segment, with
// only the header fields the broker owns rewritten in place. Reads never copy record
// bytes: Log.Read returns a FileRegion (file, position, length) that the broker
// sends with sendfile(2). Segment files are reference counted, so retention may
// delete a segment while a fetch still sends from it. fsync is a policy
// (flush.messages, flush.ms), off by default like Kafka's; rolled segments are
// flushed in the background.
//
// # Recovery guarantee
//
// After any crash, the log a partition reopens with is a prefix of what was written:
// a sequence of whole batches with valid CRC-32C and growing offsets (continuous,
// but for the gaps the LogCleaner leaves), cut at the first torn or corrupt batch. Everything that was flushed (or, after a process
// crash, written) before the crash and precedes that point is kept. A clean shutdown
// (LogManager.Close) writes a marker that lets the next start skip the scan. See
// openLog for the exact procedure.
//
// # Compaction
//
// LogCleaner (log_cleaner.go) compacts logs with cleanup.policy compact as Kafka's
// does; see its doc comment for what it keeps and how a crash mid-swap is
// recovered.
package storage
