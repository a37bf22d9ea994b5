package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kbroker/kbroker/idempotence"
)

// logParams is what openLog needs to load one partition directory.
type logParams struct {
	dir            string
	topic          string
	partition      int32
	config         LogConfig
	cleanShutdown  bool         // the data dir had a clean-shutdown marker
	dirState       partitionDir // what the caller knows of the partition directory
	logStartOffset int64        // as persisted by DeleteRecords
	// cleanerCheckpoint is the LogCleaner's first dirty offset, -1 if never
	// cleaned: segments below it may end short of the next one.
	cleanerCheckpoint int64
	persistLSO        func(int64) error
	now               func() time.Time
	logger            *slog.Logger
	onFlush           func(time.Duration) // nil: not observed
}

// openLog loads (creating if needed) a partition directory and returns its Log
// (Kafka LogLoader). What it guarantees: the segments it keeps form a prefix of what
// was written, each a valid sequence of batches with continuous offsets, each
// segment ending where the next begins.
//
//   - Leftovers of interrupted operations (.deleted, .cleaned, .tmp files and index
//     files without a .log) are removed. An interrupted LogCleaner swap is completed
//     as Kafka's LogLoader does: the segments a "<base>.log.swap" covers are deleted
//     and the swap files renamed into place; those segments' indexes are rebuilt.
//   - After a clean shutdown the files are trusted: each segment's tail (from its last
//     offset index entry) is read to find its end, and its indexes are sanity
//     checked; anything that does not add up is recovered as below.
//   - Otherwise the active segment is recovered in full: every batch's length, offsets
//     and CRC-32C are checked, the file is truncated at the first bad or torn batch,
//     and the indexes are rebuilt. Older segments get the tail check with CRCs.
//   - A segment that, after that, does not end at the next segment's base offset
//     means a lost tail: the later segments are deleted to keep the prefix property.
//   - The log start offset is max(persisted, first segment's base offset); if it lies
//     beyond the data (segments lost), the log restarts empty at it.
//   - The leader epoch cache is loaded (or rebuilt from the batches if the checkpoint
//     is missing or corrupt) and truncated to the log's offsets.
func openLog(p logParams) (*Log, error) {
	// changed: directory entries were created or removed here, so the
	// directory needs a sync before the next flush counts as durable.
	changed := false
	dirState := p.dirState
	var err error
	if dirState == dirUnknown {
		if dirState, err = makeDir(p.dir); err != nil {
			return nil, err
		}
	}
	// One listing serves the whole load (segments, leftovers, checkpoint,
	// snapshots): a broker opens thousands of partitions at start, and
	// every lookup of a file that is not there is a syscall each. A
	// directory just made needs none: it is empty.
	files := partitionFiles{names: map[string]bool{}}
	if dirState == dirCreated {
		changed = true
	} else {
		if files, err = cleanPartitionDir(p.dir, p.logger); err != nil {
			return nil, err
		}
	}
	bases, swapped := files.bases, files.swapped
	epochs, epochsFound := &LeaderEpochFileCache{path: filepath.Join(p.dir, leaderEpochCheckpointFile)}, false
	if files.names[leaderEpochCheckpointFile] {
		if epochs, epochsFound, err = loadLeaderEpochCache(epochs.path); err != nil {
			return nil, err
		}
	}

	var segs []*LogSegment
	var mustRecover []bool
	closeAll := func() {
		for _, s := range segs {
			s.close()
		}
	}
	for _, base := range bases {
		seg, indexErr, err := openSegment(p.dir, base, files.names)
		if err != nil {
			closeAll()
			return nil, err
		}
		if indexErr != nil {
			// An index whose size is not whole entries: recover the segment, which
			// rebuilds it.
			p.logger.Warn("corrupt index, rebuilding", "dir", p.dir, "base_offset", base, "err", indexErr)
		}
		segs = append(segs, seg)
		mustRecover = append(mustRecover, indexErr != nil || swapped[base])
	}

	logEnd := int64(0)
	for i := 0; i < len(segs); i++ {
		seg := segs[i]
		last := i == len(segs)-1
		needRecover := mustRecover[i] || (last && !p.cleanShutdown)
		var next int64
		if !needRecover {
			next, err = seg.loadTail(!p.cleanShutdown, p.config.IndexIntervalBytes)
			if err != nil {
				if !errors.Is(err, ErrCorruptRecord) && !errors.Is(err, ErrCorruptIndex) {
					closeAll()
					return nil, err
				}
				p.logger.Warn("segment failed its check, recovering", "dir", p.dir, "base_offset", seg.baseOffset, "err", err)
				needRecover = true
			}
		}
		if needRecover {
			var truncated int64
			next, truncated, err = seg.recover(p.config.IndexIntervalBytes, epochs)
			if err != nil {
				closeAll()
				return nil, err
			}
			if truncated > 0 {
				p.logger.Warn("truncated invalid bytes at the end of segment", "dir", p.dir, "base_offset", seg.baseOffset, "bytes", truncated)
			}
		}
		logEnd = next
		// A cleaned segment (below the cleaner checkpoint) may end before the next
		// one starts: the cleaner removed its last records. Anywhere else a short
		// segment lost its tail, and what follows cannot be trusted. A compacted
		// topic's gaps are never taken for a lost tail, so that a lost checkpoint
		// file cannot cost it its later segments.
		cleaned := seg.baseOffset < p.cleanerCheckpoint || strings.Contains(p.config.CleanupPolicy, "compact")
		if !last && (next > segs[i+1].baseOffset || (next < segs[i+1].baseOffset && !cleaned)) {
			p.logger.Warn("segment ends before the next one starts, deleting the later segments",
				"dir", p.dir, "base_offset", seg.baseOffset, "end_offset", next, "next_base_offset", segs[i+1].baseOffset)
			changed = true
			for _, s := range segs[i+1:] {
				if err := s.delete(); err != nil {
					p.logger.Warn("deleting segment", "dir", p.dir, "base_offset", s.baseOffset, "err", err)
				}
			}
			segs = segs[:i+1]
		}
	}

	logStart := p.logStartOffset
	if len(segs) > 0 {
		logStart = max(logStart, segs[0].baseOffset)
	}
	if len(segs) == 0 || logStart > logEnd {
		// Nothing on disk, or everything on disk is below the log start offset.
		// With no .log listed, no file of the new segment's name is left either
		// (cleanPartitionDir removed stray indexes), so there is nothing to clear.
		newSegment := createSegment
		if len(segs) == 0 {
			newSegment = openEmptySegment
		}
		for _, s := range segs {
			s.delete()
		}
		segs = nil
		changed = true
		seg, err := newSegment(p.dir, logStart)
		if err != nil {
			return nil, err
		}
		segs = append(segs, seg)
		logEnd = logStart
	}

	if !epochsFound && logEnd > segs[0].baseOffset {
		if err := rebuildEpochs(segs, epochs); err != nil {
			closeAll()
			return nil, err
		}
	}
	epochs.truncateFromEnd(logEnd)
	epochs.truncateFromStart(logStart)
	// A new, empty log has no epochs to keep: its checkpoint is written
	// with its first epoch, which saves two fsyncs per partition created.
	if err := epochs.flush(); err != nil {
		closeAll()
		return nil, err
	}

	active := segs[len(segs)-1]
	nowMs := p.now().UnixMilli()
	active.loadRollingBasedTime(nowMs)

	l := &Log{
		dir:                   p.dir,
		topic:                 p.topic,
		partition:             p.partition,
		logger:                p.logger,
		now:                   p.now,
		persistLogStartOffset: p.persistLSO,
		onFlush:               p.onFlush,
		epochs:                epochs,
		producers:             idempotence.NewProducerStateManager(),
	}
	l.setConfig(p.config)
	l.segments.Store(&segs)
	l.endOffset.Store(&logOffsetMetadata{offset: logEnd, segmentBase: active.baseOffset, position: active.size()})
	l.logStartOffset.Store(logStart)
	l.highWatermark.Store(logEnd)
	l.recoveryPoint.Store(logEnd)
	l.lastFlushMs.Store(nowMs)
	l.dirDirty.Store(changed)
	if err := l.loadProducerState(files.hasSnapshot); err != nil {
		closeAll()
		return nil, fmt.Errorf("storage: loading producer state of %s: %w", p.dir, err)
	}
	return l, nil
}

// partitionFiles is what a partition directory holds once cleaned.
type partitionFiles struct {
	bases       []int64        // the segments' base offsets, ascending
	swapped     map[int64]bool // segments a completed swap put in place: their indexes must be rebuilt
	names       map[string]bool
	hasSnapshot bool // a producer state snapshot is among names
}

// partitionDir is what the caller of openLog knows of the partition directory.
type partitionDir int

const (
	dirUnknown partitionDir = iota // not looked for: openLog makes it if missing
	dirListed                      // a listing of the data dir has it
	dirCreated                     // just made, so empty
)

// makeDir creates a partition directory unless it exists, and reports
// which it found.
func makeDir(dir string) (partitionDir, error) {
	err := os.Mkdir(dir, 0o755)
	switch {
	case err == nil:
		return dirCreated, nil
	case errors.Is(err, os.ErrExist):
		return dirListed, nil
	}
	// A parent is missing. MkdirAll also succeeds on a directory made
	// meanwhile, so the result is not known to be empty.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return dirUnknown, err
	}
	return dirListed, nil
}

// cleanPartitionDir removes leftovers of interrupted operations, completes
// interrupted LogCleaner swaps, and lists what is left
// (LogLoader.removeTempFilesAndCollectSwapFiles and its swap handling).
func cleanPartitionDir(dir string, logger *slog.Logger) (partitionFiles, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return partitionFiles{}, err
	}
	swapped, err := completeSwaps(dir, entries, logger)
	if err != nil {
		return partitionFiles{}, err
	}
	if len(swapped) > 0 { // files were renamed and removed
		if entries, err = os.ReadDir(dir); err != nil {
			return partitionFiles{}, err
		}
	}
	files := partitionFiles{swapped: swapped, names: make(map[string]bool, len(entries))}
	logs := map[int64]bool{}
	for _, e := range entries {
		if base, ok := offsetFromFileName(e.Name(), logFileSuffix); ok && e.Type().IsRegular() {
			files.bases = append(files.bases, base)
			logs[base] = true
		}
	}
	for _, e := range entries {
		name := e.Name()
		stray := strings.HasSuffix(name, deletedFileSuffix) || strings.HasSuffix(name, cleanedFileSuffix) ||
			strings.HasSuffix(name, swapFileSuffix) || strings.HasSuffix(name, tmpFileSuffix)
		for _, suffix := range []string{indexFileSuffix, timeIndexFileSuffix, txnIndexFileSuffix} {
			if base, ok := offsetFromFileName(name, suffix); ok && !logs[base] {
				stray = true
			}
		}
		if !stray {
			files.names[name] = true
			files.hasSnapshot = files.hasSnapshot || strings.HasSuffix(name, idempotence.SnapshotSuffix)
			continue
		}
		logger.Info("removing stray file", "dir", dir, "file", name)
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return partitionFiles{}, err
		}
	}
	slices.Sort(files.bases)
	return files, nil
}

// completeSwaps finishes the swaps a crash interrupted. The cleaner wrote and
// fsynced "<base>.*.cleaned", renamed them to ".swap", then renamed the replaced
// segments' logs to ".deleted" (their indexes removed) and the swap files to their
// final names, the log first. So:
//   - "<base>.log.swap" present: the swap may not have begun. Every segment whose
//     base offset lies in [base, the swap log's next offset) is old: its files go,
//     and the swap files take their names (UnifiedLog.replaceSegments' recovery).
//   - an index ".swap" alone: its log was renamed already; the index follows.
//
// ".cleaned" files were never part of the log and are removed afterwards with the
// other leftovers.
func completeSwaps(dir string, entries []os.DirEntry, logger *slog.Logger) (map[int64]bool, error) {
	swapped := map[int64]bool{}
	var logBases []int64
	for _, e := range entries {
		if base, ok := offsetFromFileName(e.Name(), logFileSuffix); ok {
			logBases = append(logBases, base)
		}
	}
	for _, e := range entries {
		base, ok := offsetFromFileName(e.Name(), logFileSuffix+swapFileSuffix)
		if !ok {
			continue
		}
		next, err := swapLogEnd(filepath.Join(dir, e.Name()), base)
		if err != nil {
			return nil, err
		}
		// Index files under base's final names are the old segment's: the new ones
		// are renamed only after the log.
		for _, sfx := range []string{indexFileSuffix, timeIndexFileSuffix, txnIndexFileSuffix} {
			if err := os.Remove(segmentFile(dir, base, sfx)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
		for _, old := range logBases {
			if old < base || old >= max(next, base+1) {
				continue
			}
			logger.Info("completing interrupted cleaner swap: deleting replaced segment", "dir", dir, "base_offset", old, "swap_base_offset", base)
			for _, sfx := range []string{logFileSuffix, indexFileSuffix, timeIndexFileSuffix, txnIndexFileSuffix} {
				if err := os.Remove(segmentFile(dir, old, sfx)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return nil, err
				}
			}
		}
		if err := os.Rename(filepath.Join(dir, e.Name()), segmentFile(dir, base, logFileSuffix)); err != nil {
			return nil, err
		}
		swapped[base] = true
	}
	for _, e := range entries {
		for _, sfx := range []string{indexFileSuffix, timeIndexFileSuffix, txnIndexFileSuffix} {
			base, ok := offsetFromFileName(e.Name(), sfx+swapFileSuffix)
			if !ok {
				continue
			}
			if _, err := os.Stat(segmentFile(dir, base, logFileSuffix)); err != nil {
				continue // no log for it: removed as a stray file
			}
			if err := os.Rename(filepath.Join(dir, e.Name()), segmentFile(dir, base, sfx)); err != nil {
				return nil, err
			}
			swapped[base] = true
		}
	}
	if len(swapped) > 0 {
		if err := syncDir(dir); err != nil {
			return nil, err
		}
	}
	return swapped, nil
}

// swapLogEnd is the next offset after the last whole batch of a swap log (written
// and fsynced whole before it was renamed), or base if it has none.
func swapLogEnd(path string, base int64) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	next := base
	for len(b) >= BatchHeaderSize {
		h, err := ParseBatchHeader(b)
		if err != nil || h.Size() > len(b) {
			break
		}
		next = h.LastOffset() + 1
		b = b[h.Size():]
	}
	return next, nil
}

// rebuildEpochs refills an empty leader epoch cache from the batch headers.
func rebuildEpochs(segs []*LogSegment, epochs *LeaderEpochFileCache) error {
	var buf [BatchHeaderSize]byte
	for _, seg := range segs {
		size := seg.size()
		for pos := int64(0); pos < size; {
			h, err := seg.readHeader(&buf, pos, size)
			if err != nil {
				return fmt.Errorf("storage: rebuilding leader epochs: %w", err)
			}
			if e := h.PartitionLeaderEpoch; e >= 0 && e > epochs.latestEpoch() {
				epochs.assign(e, h.BaseOffset)
			}
			pos += int64(h.Size())
		}
	}
	return nil
}
