package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// CleanerConfig configures the LogCleaner (Kafka CleanerConfig), from the broker's
// log.cleaner.* settings.
type CleanerConfig struct {
	Enable           bool          // log.cleaner.enable
	Threads          int           // log.cleaner.threads; 0 cleans nothing
	DedupeBufferSize int64         // log.cleaner.dedupe.buffer.size, shared by the threads
	IOBufferSize     int           // log.cleaner.io.buffer.size: read and write buffers
	Backoff          time.Duration // log.cleaner.backoff.ms: sleep when no log needs cleaning
}

// DefaultCleanerConfig returns Kafka's defaults.
func DefaultCleanerConfig() CleanerConfig {
	return CleanerConfig{Enable: true, Threads: 1, DedupeBufferSize: 128 << 20, IOBufferSize: 512 << 10, Backoff: 15 * time.Second}
}

// CleanerStats are running totals of the LogCleaner, for metrics (Kafka's
// LogCleaner and LogCleanerManager gauges).
type CleanerStats struct {
	Runs                  int64   // cleans completed
	BytesRead             int64   // bytes of segments read by cleans
	BytesWritten          int64   // bytes of cleaned segments written
	LastCleanSeconds      float64 // duration of the last clean (max-clean-time-secs is over the last run)
	MaxBufferUtilization  float64 // share of the offset map used by the last clean (max-buffer-utilization-percent / 100)
	MaxDirtyRatio         float64 // dirtiest log's dirty ratio at the last check (max-dirty-percent / 100)
	UncleanablePartitions int64   // logs skipped since a clean of theirs failed (uncleanable-partitions-count)
}

// LogCleaner compacts logs whose cleanup.policy has "compact" (Kafka LogCleaner):
// Threads goroutines each pick the dirtiest log (LogCleanerManager.
// grabFilthiestCompactedLog), clean it, and back off when none needs it.
//
// A log's cleaner checkpoint (first dirty offset) splits it: below, the clean part,
// where every key is unique; from there to the first uncleanable offset, the dirty
// part. A clean builds an offset map (key -> latest offset) of the dirty part, then
// recopies every segment below the end of what the map covers, keeping only each
// key's latest record, and swaps the copies in. The active segment is never
// cleaned, nor anything at or past the last stable offset (which is at or below
// the high watermark), nor segments younger than min.compaction.lag.ms.
//
// Crash safety is Kafka's: a group's copy is written as "<base>.log.cleaned" (and
// its indexes), fsynced, renamed to ".swap", and only then, under the log's lock,
// are the old segments renamed ".deleted" and the swap files renamed into place.
// openLog deletes ".cleaned" files and completes an interrupted swap. A clean holds
// the log's lock only for the swap: appends and fetches go on meanwhile, and
// fetches already sending from a replaced segment keep their file open.
type LogCleaner struct {
	cfg         CleanerConfig
	logs        func() []*Log
	checkpoints *cleanerCheckpoints
	logger      *slog.Logger
	now         func() time.Time

	mu         sync.Mutex // guards inProgress and uncleanable
	inProgress map[*Log]bool
	// uncleanable are logs whose clean failed (a corrupt batch, an I/O error):
	// skipped until the broker restarts, as Kafka's LogCleanerManager marks them.
	uncleanable map[*Log]bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}

	statsMu sync.Mutex
	stats   CleanerStats
}

func newLogCleaner(cfg CleanerConfig, logs func() []*Log, checkpoints *cleanerCheckpoints, logger *slog.Logger, now func() time.Time) *LogCleaner {
	if cfg.IOBufferSize <= 0 {
		cfg.IOBufferSize = 512 << 10
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 15 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &LogCleaner{
		cfg: cfg, logs: logs, checkpoints: checkpoints, logger: logger, now: now,
		inProgress: map[*Log]bool{}, uncleanable: map[*Log]bool{}, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1),
	}
}

// start runs the cleaner goroutines (CleanerThread) if enabled.
func (c *LogCleaner) start() {
	if !c.cfg.Enable {
		return
	}
	for i := 0; i < c.cfg.Threads; i++ {
		c.wg.Add(1)
		go c.run()
	}
}

// shutdown stops the goroutines, aborting cleans in progress (their output is
// deleted), and waits for them.
func (c *LogCleaner) shutdown() {
	c.cancel()
	c.wg.Wait()
}

// Wakeup makes an idle cleaner goroutine look for work now instead of after its
// backoff.
func (c *LogCleaner) Wakeup() { notify(c.wake) }

// Stats returns the cleaner's totals.
func (c *LogCleaner) Stats() CleanerStats {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	return c.stats
}

func (c *LogCleaner) run() {
	defer c.wg.Done()
	for c.ctx.Err() == nil {
		if c.cleanFilthiestLog(c.ctx) {
			continue
		}
		t := time.NewTimer(c.cfg.Backoff)
		select {
		case <-c.ctx.Done():
		case <-t.C:
		case <-c.wake:
		}
		t.Stop()
	}
}

// cleanFilthiestLog cleans the dirtiest cleanable log, if any; it reports whether
// it cleaned one.
func (c *LogCleaner) cleanFilthiestLog(ctx context.Context) bool {
	l, ltc, ok := c.grabFilthiestCompactedLog()
	if !ok {
		return false
	}
	defer c.doneCleaning(l)
	cleaned, err := c.clean(ctx, l, ltc)
	if err != nil {
		if ctx.Err() == nil && !l.closed.Load() && !errors.Is(err, errSegmentsChanged) {
			c.logger.Error("log cleaner: clean failed, the log is marked uncleanable until restart", "log", l.name(), "err", err)
			c.mu.Lock()
			c.uncleanable[l] = true
			n := len(c.uncleanable)
			c.mu.Unlock()
			c.statsMu.Lock()
			c.stats.UncleanablePartitions = int64(n)
			c.statsMu.Unlock()
		}
		return false
	}
	return cleaned
}

// logToClean is a log's cleaning state (Kafka LogToClean + cleanableOffsets).
type logToClean struct {
	firstDirtyOffset       int64
	firstUncleanableOffset int64
	cleanBytes             int64
	cleanableBytes         int64
	needCompactionNow      bool // max.compaction.lag.ms passed
}

func (t logToClean) cleanableRatio() float64 {
	if t.cleanBytes+t.cleanableBytes == 0 {
		return 0
	}
	return float64(t.cleanableBytes) / float64(t.cleanBytes+t.cleanableBytes)
}

// grabFilthiestCompactedLog picks the compacted log with the largest dirty ratio
// among those above min.cleanable.dirty.ratio or past max.compaction.lag.ms, and
// marks it in progress.
func (c *LogCleaner) grabFilthiestCompactedLog() (*Log, logToClean, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *Log
	var bestLtc logToClean
	bestRatio, maxRatio := -1.0, 0.0
	for _, l := range c.logs() {
		cfg := l.Config()
		if !cfg.CompactEnabled() || c.inProgress[l] || c.uncleanable[l] || l.closed.Load() {
			continue
		}
		ltc := c.cleanableOffsets(l, cfg)
		r := ltc.cleanableRatio()
		maxRatio = max(maxRatio, r)
		if !(ltc.needCompactionNow && ltc.cleanableBytes > 0) && r <= cfg.MinCleanableDirtyRatio {
			continue
		}
		if ltc.cleanableBytes == 0 {
			continue
		}
		if r > bestRatio {
			best, bestLtc, bestRatio = l, ltc, r
		}
	}
	c.statsMu.Lock()
	c.stats.MaxDirtyRatio = maxRatio
	c.statsMu.Unlock()
	if best == nil {
		return nil, logToClean{}, false
	}
	c.inProgress[best] = true
	return best, bestLtc, true
}

func (c *LogCleaner) doneCleaning(l *Log) {
	c.mu.Lock()
	delete(c.inProgress, l)
	c.mu.Unlock()
}

// cleanableOffsets computes where a log's dirty part starts and ends
// (LogCleanerManager.cleanableOffsets): from the checkpoint (reset to the log
// start offset if it lies outside the log) up to the first of: the last stable
// offset, the active segment, the first segment with a record younger than
// min.compaction.lag.ms.
func (c *LogCleaner) cleanableOffsets(l *Log, cfg LogConfig) logToClean {
	segs := *l.segments.Load()
	logStart, leo := l.LogStartOffset(), l.LogEndOffset()
	firstDirty, ok := c.checkpoints.get(l)
	if !ok || firstDirty < logStart || firstDirty > leo {
		firstDirty = logStart
	}
	active := segs[len(segs)-1]
	firstUncleanable := min(l.LastStableOffset(), active.baseOffset)
	nowMs := l.now().UnixMilli()
	earliestDirtyTs := int64(math.MaxInt64)
	for i, seg := range segs[:len(segs)-1] {
		if segs[i+1].baseOffset <= firstDirty || seg.baseOffset >= firstUncleanable {
			continue
		}
		if cfg.MinCompactionLagMs > 0 {
			if ts, _ := seg.maxTimestampSoFar(); ts > nowMs-cfg.MinCompactionLagMs {
				firstUncleanable = min(firstUncleanable, seg.baseOffset)
				continue
			}
		}
		if ts := seg.firstBatchTimestamp(); ts > 0 {
			earliestDirtyTs = min(earliestDirtyTs, ts)
		}
	}
	firstUncleanable = max(firstUncleanable, firstDirty)
	ltc := logToClean{firstDirtyOffset: firstDirty, firstUncleanableOffset: firstUncleanable}
	for i, seg := range segs {
		end := leo
		if i+1 < len(segs) {
			end = segs[i+1].baseOffset
		}
		switch {
		case end <= firstDirty:
			ltc.cleanBytes += seg.size()
		case firstDirty < firstUncleanable && seg.baseOffset < firstUncleanable:
			ltc.cleanableBytes += seg.size()
		}
	}
	maxLag := max(cfg.MaxCompactionLagMs, 0)
	if earliestDirtyTs != math.MaxInt64 && nowMs-maxLag > earliestDirtyTs {
		ltc.needCompactionNow = true
	}
	return ltc
}

// errSegmentsChanged aborts a clean whose segments were deleted or truncated
// meanwhile (retention, DeleteRecords, a follower's truncation), and tells a
// read that the segment it picked was let go of under it (Log.acquire).
var errSegmentsChanged = errors.New("storage: segments changed")

// clean is Cleaner.doClean for one log: it builds the offset map of the dirty
// part, cleans the segments below the map's end group by group, and moves the
// checkpoint to that end.
func (c *LogCleaner) clean(ctx context.Context, l *Log, ltc logToClean) (bool, error) {
	began := time.Now()
	cfg := l.Config()
	// This thread's share of log.cleaner.dedupe.buffer.size, as Kafka's, but
	// allocated per clean and no larger than the dirty part could need: one
	// record per minRecordSize bytes, four times over for compressed batches
	// (a clean whose map fills stops there; the next one goes on).
	memory := c.cfg.DedupeBufferSize / int64(max(c.cfg.Threads, 1))
	need := (ltc.cleanableBytes/minRecordSize + 1) * 4 * offsetMapSlotSize * 10 / 9
	offsetMap := newSkimpyOffsetMap(min(memory, max(need, 64*offsetMapSlotSize)))
	cl := &cleaner{cfg: cfg, ioBufferSize: c.cfg.IOBufferSize, log: l, ctx: ctx}
	endOffset, err := cl.buildOffsetMap(ltc.firstDirtyOffset, ltc.firstUncleanableOffset, offsetMap)
	if err != nil {
		return false, err
	}
	if endOffset <= ltc.firstDirtyOffset {
		return false, nil
	}
	producers := l.producers.Producers()
	active := map[int64]lastRecord{}
	for _, p := range producers {
		lr := lastRecord{lastDataOffset: -1, producerEpoch: p.ProducerEpoch}
		if n := len(p.Batches); n > 0 {
			lr.lastDataOffset = p.Batches[n-1].LastOffset
		}
		active[p.ProducerID] = lr
	}
	segs := *l.segments.Load()
	var toClean []*LogSegment
	for _, seg := range segs[:len(segs)-1] {
		if seg.baseOffset >= endOffset {
			break
		}
		toClean = append(toClean, seg)
	}
	for _, group := range groupSegmentsBySize(toClean, cfg, segs) {
		// The checkpoint passes the group's base before the group is swapped in: a
		// segment below the checkpoint may end short of the next one, which is how
		// openLog tells a cleaned segment from one that lost its tail.
		if err := c.checkpoints.advance(l, group[0].baseOffset+1); err != nil {
			return false, err
		}
		filter := &batchFilter{
			offsetMap: offsetMap, activeProducers: active,
			nowMs: l.now().UnixMilli(), deleteRetentionMs: cfg.DeleteRetentionMs,
		}
		read, written, err := cl.cleanSegments(group, filter)
		c.statsMu.Lock()
		c.stats.BytesRead += read
		c.stats.BytesWritten += written
		c.statsMu.Unlock()
		if err != nil {
			return false, err
		}
	}
	if err := c.checkpoints.advance(l, endOffset); err != nil {
		return false, err
	}
	c.statsMu.Lock()
	c.stats.Runs++
	c.stats.LastCleanSeconds = time.Since(began).Seconds()
	c.stats.MaxBufferUtilization = offsetMap.utilization()
	c.statsMu.Unlock()
	c.logger.Info("log cleaner: cleaned log", "log", l.name(), "first_dirty_offset", ltc.firstDirtyOffset,
		"end_offset", endOffset, "keys", offsetMap.Size(), "duration", time.Since(began))
	return true, nil
}

// groupSegmentsBySize groups consecutive segments so that each group's copy fits
// one segment (Cleaner.groupSegmentsBySize): at most segment.bytes of log, indexes
// within segment.index.bytes, offsets within a 32-bit relative offset. all is the
// log's segment list, for each segment's end offset.
func groupSegmentsBySize(segs []*LogSegment, cfg LogConfig, all []*LogSegment) [][]*LogSegment {
	next := func(s *LogSegment) int64 {
		i := sort.Search(len(all), func(i int) bool { return all[i].baseOffset > s.baseOffset })
		if i < len(all) {
			return all[i].baseOffset
		}
		return math.MaxInt64
	}
	maxIndexBytes := cfg.SegmentIndexBytes
	var groups [][]*LogSegment
	for len(segs) > 0 {
		group := []*LogSegment{segs[0]}
		logSize := segs[0].size()
		indexSize := int64(segs[0].offsetIndex.entryCount()) * offsetIndexEntrySize
		timeIndexSize := int64(segs[0].timeIndex.entryCount()) * timeIndexEntrySize
		segs = segs[1:]
		for len(segs) > 0 &&
			logSize+segs[0].size() <= cfg.SegmentBytes &&
			indexSize+int64(segs[0].offsetIndex.entryCount())*offsetIndexEntrySize <= maxIndexBytes &&
			timeIndexSize+int64(segs[0].timeIndex.entryCount())*timeIndexEntrySize <= maxIndexBytes &&
			next(segs[0])-1-group[0].baseOffset <= math.MaxInt32 {
			group = append(group, segs[0])
			logSize += segs[0].size()
			indexSize += int64(segs[0].offsetIndex.entryCount()) * offsetIndexEntrySize
			timeIndexSize += int64(segs[0].timeIndex.entryCount()) * timeIndexEntrySize
			segs = segs[1:]
		}
		groups = append(groups, group)
	}
	return groups
}

// cleaner is one clean of one log (Kafka's Cleaner, for the length of doClean).
type cleaner struct {
	cfg          LogConfig
	ioBufferSize int
	log          *Log
	ctx          context.Context
}

// collectAbortedTxns lists the aborted transactions overlapping [from, to), sorted
// by first offset (UnifiedLog.collectAbortedTransactions over every segment).
func (cl *cleaner) collectAbortedTxns(from, to int64) []AbortedTxn {
	var out []AbortedTxn
	for _, seg := range *cl.log.segments.Load() {
		out = seg.txnIndex.collect(from, to, out)
	}
	slices.SortFunc(out, func(a, b AbortedTxn) int { return int(min(max(a.FirstOffset-b.FirstOffset, -1), 1)) })
	return out
}

// forEachBatch reads seg's batches from the start through a buffered reader and
// calls fn with each whole batch (valid until the next call). It holds a reference
// on the file for the length of the scan.
func (cl *cleaner) forEachBatch(seg *LogSegment, fn func(batch []byte, h BatchHeader) (bool, error)) error {
	if !seg.log.tryAcquire() {
		return errSegmentsChanged
	}
	defer seg.log.release()
	size := seg.size()
	r := bufio.NewReaderSize(io.NewSectionReader(seg.log.file, 0, size), cl.ioBufferSize)
	var buf []byte
	for pos := int64(0); pos < size; {
		if err := cl.ctx.Err(); err != nil {
			return err
		}
		if size-pos < BatchHeaderSize {
			return fmt.Errorf("%w: %s: %d trailing bytes at %d", ErrCorruptRecord, seg.log.path, size-pos, pos)
		}
		buf = slices.Grow(buf[:0], BatchHeaderSize)[:BatchHeaderSize]
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		h, err := ParseBatchHeader(buf)
		if err != nil {
			return fmt.Errorf("%w (%s, position %d)", err, seg.log.path, pos)
		}
		if int64(h.Size()) > size-pos {
			return fmt.Errorf("%w: %s: batch at %d overruns the segment", ErrCorruptRecord, seg.log.path, pos)
		}
		buf = slices.Grow(buf, h.Size()-BatchHeaderSize)[:h.Size()]
		if _, err := io.ReadFull(r, buf[BatchHeaderSize:]); err != nil {
			return err
		}
		pos += int64(h.Size())
		if cont, err := fn(buf, h); err != nil || !cont {
			return err
		}
	}
	return nil
}

// buildOffsetMap fills the map with the latest offset of each key in [start, end)
// (Cleaner.buildOffsetMap), skipping aborted transactions and control batches. When
// the map fills up it stops there; it returns the offset the map covers up to
// (exclusive): end, or less if the map filled.
func (cl *cleaner) buildOffsetMap(start, end int64, m *SkimpyOffsetMap) (int64, error) {
	txns := newCleanedTransactionMetadata(cl.collectAbortedTxns(start, end))
	segs := *cl.log.segments.Load()
	full := false
	var f batchFilter
	for i, seg := range segs[:len(segs)-1] {
		if segs[i+1].baseOffset <= start {
			continue
		}
		if seg.baseOffset >= end || full {
			break
		}
		err := cl.forEachBatch(seg, func(batch []byte, h BatchHeader) (bool, error) {
			if h.BaseOffset >= end {
				return false, nil
			}
			if h.IsControl() {
				if _, err := txns.onControlBatchRead(batch, h); err != nil {
					return false, err
				}
			} else if !txns.onBatchRead(h) {
				err := f.forEachRecord(batch, h, func(_ []byte, r Record) {
					if full || r.Key == nil || r.Offset < start {
						return
					}
					if m.full() && m.get(r.Key) < 0 {
						full = true
						return
					}
					m.put(r.Key, r.Offset)
				})
				if err != nil {
					return false, err
				}
			}
			if full {
				return false, nil
			}
			if h.LastOffset() >= start {
				m.updateLatestOffset(h.LastOffset())
			}
			return true, nil
		})
		if err != nil {
			return 0, err
		}
	}
	if full {
		return min(m.latestOffset+1, end), nil
	}
	return end, nil
}

// cleanSegments copies a group of segments into one cleaned segment, named after
// the group's first, and swaps it in (Cleaner.cleanSegments). It returns the bytes
// read and written.
func (cl *cleaner) cleanSegments(group []*LogSegment, filter *batchFilter) (read, written int64, err error) {
	l := cl.log
	base := group[0].baseOffset
	sizes := make([]int64, len(group))
	for i, s := range group {
		sizes[i] = s.size()
	}
	segs := *l.segments.Load()
	groupEnd := l.LogEndOffset()
	if i := slices.Index(segs, group[len(group)-1]); i >= 0 && i+1 < len(segs) {
		groupEnd = segs[i+1].baseOffset
	}
	filter.txns = newCleanedTransactionMetadata(cl.collectAbortedTxns(base, groupEnd))

	removeCleaned := func() {
		for _, sfx := range []string{logFileSuffix, indexFileSuffix, timeIndexFileSuffix, txnIndexFileSuffix} {
			os.Remove(segmentFile(l.dir, base, sfx+cleanedFileSuffix))
			os.Remove(segmentFile(l.dir, base, sfx+swapFileSuffix))
		}
	}
	removeCleaned() // a previous attempt's leftovers
	out, err := os.OpenFile(segmentFile(l.dir, base, logFileSuffix+cleanedFileSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, 0, err
	}
	ok := false
	defer func() {
		if !ok {
			removeCleaned()
		}
	}()
	w := bufio.NewWriterSize(out, cl.ioBufferSize)
	var dst []byte
	var lastMod time.Time
	for _, seg := range group {
		if st, err := seg.log.file.Stat(); err == nil && st.ModTime().After(lastMod) {
			lastMod = st.ModTime()
		}
		err := cl.forEachBatch(seg, func(batch []byte, h BatchHeader) (bool, error) {
			read += int64(len(batch))
			var err error
			if dst, err = filter.filter(dst[:0], batch, h); err != nil {
				return false, fmt.Errorf("%w (%s, offset %d)", err, seg.log.path, h.BaseOffset)
			}
			written += int64(len(dst))
			_, err = w.Write(dst)
			return true, err
		})
		if err != nil {
			out.Close()
			return read, written, err
		}
	}
	err = w.Flush()
	if err == nil {
		err = out.Sync()
	}
	if err != nil {
		out.Close()
		return read, written, err
	}
	if err := out.Close(); err != nil {
		return read, written, err
	}
	if !lastMod.IsZero() {
		// Time retention of the cleaned segment counts from the newest old one, as
		// Kafka sets the cleaned segment's last modified time.
		os.Chtimes(segmentFile(l.dir, base, logFileSuffix+cleanedFileSuffix), lastMod, lastMod)
	}

	// Indexes: a scan of the copy builds them as recovery would, and checks every
	// CRC of what is about to replace the originals.
	cleaned, _, err := openSegmentFiles(l.dir, base, cleanedFileSuffix, nil)
	if err != nil {
		return read, written, err
	}
	res, err := cleaned.scan(0, base, -1, true, cl.cfg.IndexIntervalBytes)
	if err == nil && res.err != nil {
		err = fmt.Errorf("storage: cleaned segment of %s at %d fails its own check: %w", l.name(), base, res.err)
	}
	if err == nil {
		cleaned.rebuildIndexes(res)
		for _, a := range filter.txns.cleanedIndex {
			if err = cleaned.txnIndex.append(a); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = cleaned.flush()
	}
	if cerr := cleaned.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return read, written, err
	}
	// .cleaned -> .swap: from here on, recovery completes the swap.
	for _, sfx := range []string{indexFileSuffix, timeIndexFileSuffix, txnIndexFileSuffix, logFileSuffix} {
		err := os.Rename(segmentFile(l.dir, base, sfx+cleanedFileSuffix), segmentFile(l.dir, base, sfx+swapFileSuffix))
		if err != nil && !(sfx != logFileSuffix && errors.Is(err, os.ErrNotExist)) { // an index file exists only once it has entries
			return read, written, err
		}
	}
	if err := syncDir(l.dir); err != nil {
		return read, written, err
	}
	if err := l.replaceSegments(group, sizes, base, res); err != nil {
		// Unless the swap never began, its files stay for recovery to complete.
		ok = !errors.Is(err, errSegmentsChanged) && !errors.Is(err, ErrClosed)
		return read, written, err
	}
	ok = true
	return read, written, nil
}

// replaceSegments swaps the cleaned segment at base in for the group
// (UnifiedLog.replaceSegments), under the log's lock: the old segments are renamed
// ".deleted" (removed once no fetch sends from them), then the ".swap" files take
// their names, the log file first. It refuses, leaving the log alone, if the
// group changed since the clean began. If the swap fails midway the old segments
// stay in the list, readable, and the next start completes it.
func (l *Log) replaceSegments(group []*LogSegment, sizes []int64, base int64, res scanResult) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	segs := *l.segments.Load()
	at := slices.Index(segs, group[0])
	if at < 0 || at+len(group) >= len(segs) {
		return errSegmentsChanged
	}
	for i, s := range group {
		if segs[at+i] != s || s.size() != sizes[i] {
			return errSegmentsChanged
		}
	}
	// The old segments keep their files open until the new list is out: a
	// read that picked one meanwhile must still find its records.
	var errs []error
	for _, s := range group {
		errs = append(errs, s.markDeleted())
	}
	errs = append(errs, syncDir(l.dir))
	if err := errors.Join(errs...); err != nil {
		// The swap files stay: the next start completes the swap.
		return fmt.Errorf("storage: replacing segments of %s: %w", l.name(), err)
	}
	for _, sfx := range []string{logFileSuffix, indexFileSuffix, timeIndexFileSuffix, txnIndexFileSuffix} {
		err := os.Rename(segmentFile(l.dir, base, sfx+swapFileSuffix), segmentFile(l.dir, base, sfx))
		if err != nil && !(sfx != logFileSuffix && errors.Is(err, os.ErrNotExist)) { // an index file exists only once it has entries
			errs = append(errs, err)
		}
	}
	seg, indexErr, err := openSegment(l.dir, base, nil)
	if err == nil && indexErr != nil {
		seg.rebuildIndexes(res)
	}
	if err = errors.Join(append(errs, err)...); err != nil {
		// Readers keep the old segments' open files; the next start recovers.
		return fmt.Errorf("storage: swapping in cleaned segment of %s at %d: %w", l.name(), base, err)
	}
	seg.tsMu.Lock()
	seg.maxTimestamp, seg.offsetOfMaxTimestamp = res.maxTimestamp, res.offsetOfMaxTs
	seg.tsMu.Unlock()
	seg.bytesSinceLastIndexEntry = res.validBytes - res.lastIndexPos
	kept := make([]*LogSegment, 0, len(segs)-len(group)+1)
	kept = append(append(append(kept, segs[:at]...), seg), segs[at+len(group):]...)
	l.segments.Store(&kept)
	for _, s := range group {
		s.log.release()
	}
	l.dirDirty.Store(true)
	return nil
}

// cleanerCheckpoints is Kafka's cleaner-offset-checkpoint: each compacted log's
// first dirty offset, in one text file per data dir ("0", the entry count, then
// "<topic> <partition> <offset>" lines), rewritten atomically on every change.
type cleanerCheckpoints struct {
	path    string
	mu      sync.Mutex
	offsets map[topicPartition]int64
	dirty   atomic.Bool
}

type topicPartition struct {
	topic     string
	partition int32
}

func (c *cleanerCheckpoints) get(l *Log) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	off, ok := c.offsets[topicPartition{l.topic, l.partition}]
	return off, ok
}

// lookup is a partition's checkpoint, -1 if none.
func (c *cleanerCheckpoints) lookup(topic string, partition int32) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if off, ok := c.offsets[topicPartition{topic, partition}]; ok {
		return off
	}
	return -1
}

// advance moves l's checkpoint up to offset and writes the file.
func (c *cleanerCheckpoints) advance(l *Log, offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	tp := topicPartition{l.topic, l.partition}
	if cur, ok := c.offsets[tp]; ok && cur >= offset {
		return nil
	}
	c.offsets[tp] = offset
	return c.writeLocked()
}

// lower moves l's checkpoint down to offset if it is above (the log was
// truncated there: what follows is new, dirty data).
func (c *cleanerCheckpoints) lower(l *Log, offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	tp := topicPartition{l.topic, l.partition}
	if cur, ok := c.offsets[tp]; !ok || cur <= offset {
		return nil
	}
	c.offsets[tp] = offset
	return c.writeLocked()
}

// remove forgets a topic's partitions (the topic was deleted).
func (c *cleanerCheckpoints) remove(topic string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.offsets)
	for tp := range c.offsets {
		if tp.topic == topic {
			delete(c.offsets, tp)
		}
	}
	if n == len(c.offsets) {
		return nil
	}
	return c.writeLocked()
}

func (c *cleanerCheckpoints) writeLocked() error {
	tps := make([]topicPartition, 0, len(c.offsets))
	for tp := range c.offsets {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b topicPartition) int {
		if a.topic != b.topic {
			if a.topic < b.topic {
				return -1
			}
			return 1
		}
		return int(a.partition - b.partition)
	})
	b := fmt.Appendf(nil, "0\n%d\n", len(tps))
	for _, tp := range tps {
		b = fmt.Appendf(b, "%s %d %d\n", tp.topic, tp.partition, c.offsets[tp])
	}
	return writeFileAtomic(c.path, b)
}

// loadCleanerCheckpoints reads the file; a missing file is empty, a malformed one
// is ignored (the logs are then cleaned from their start, which is only slower).
func loadCleanerCheckpoints(path string, logger *slog.Logger) *cleanerCheckpoints {
	c := &cleanerCheckpoints{path: path, offsets: map[topicPartition]int64{}}
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logger.Warn("reading cleaner checkpoint", "path", path, "err", err)
		}
		return c
	}
	var version, n int
	rest := string(b)
	var lines []string
	for len(rest) > 0 {
		i := 0
		for i < len(rest) && rest[i] != '\n' {
			i++
		}
		lines = append(lines, rest[:i])
		rest = rest[min(i+1, len(rest)):]
	}
	if len(lines) < 2 {
		logger.Warn("malformed cleaner checkpoint, ignored", "path", path)
		return c
	}
	if _, err := fmt.Sscanf(lines[0], "%d", &version); err != nil || version != 0 {
		logger.Warn("malformed cleaner checkpoint, ignored", "path", path)
		return c
	}
	if _, err := fmt.Sscanf(lines[1], "%d", &n); err != nil || n != len(lines)-2 {
		logger.Warn("malformed cleaner checkpoint, ignored", "path", path)
		return c
	}
	for _, line := range lines[2:] {
		var tp topicPartition
		var off int64
		if _, err := fmt.Sscanf(line, "%s %d %d", &tp.topic, &tp.partition, &off); err != nil {
			logger.Warn("malformed cleaner checkpoint, ignored", "path", path)
			return &cleanerCheckpoints{path: path, offsets: map[topicPartition]int64{}}
		}
		c.offsets[tp] = off
	}
	return c
}
