package storage

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
)

const (
	// undefinedEpoch and undefinedEpochOffset are Kafka's UNDEFINED_EPOCH and
	// UNDEFINED_EPOCH_OFFSET, returned by OffsetForLeaderEpoch for unknown epochs.
	undefinedEpoch       = -1
	undefinedEpochOffset = -1

	leaderEpochCheckpointVersion = 0
)

// LeaderEpochFileCache remembers, for each leader epoch, the first offset written in
// it (Kafka LeaderEpochFileCache). A returning replica uses it to find where its log
// diverges from the leader's (OffsetForLeaderEpoch, KIP-101/KIP-279).
//
// It is persisted as the "leader-epoch-checkpoint" file in the partition directory,
// in Kafka's CheckpointFile text format:
//
//	0                 version
//	2                 number of entries
//	0 0               epoch start-offset
//	3 1500
//
// rewritten atomically (temporary file, fsync, rename) whenever it changes.
type LeaderEpochFileCache struct {
	path string

	mu     sync.RWMutex
	epochs []epochEntry // ascending by epoch and by start offset
	dirty  bool         // changed since the last successful write
}

type epochEntry struct {
	epoch       int32
	startOffset int64
}

// loadLeaderEpochCache reads the checkpoint. found is false when the file is missing
// or unreadable; the cache is then empty and the caller may rebuild it from the log.
func loadLeaderEpochCache(path string) (c *LeaderEpochFileCache, found bool, err error) {
	c = &LeaderEpochFileCache{path: path}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return c, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	entries, perr := parseEpochCheckpoint(b)
	if perr != nil {
		c.dirty = true
		return c, false, nil
	}
	c.epochs = entries
	return c, true, nil
}

func parseEpochCheckpoint(b []byte) ([]epochEntry, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		return sc.Text(), true
	}
	v, ok := line()
	if !ok || strings.TrimSpace(v) != strconv.Itoa(leaderEpochCheckpointVersion) {
		return nil, fmt.Errorf("bad version line %q", v)
	}
	n, ok := line()
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err != nil || count < 0 || count > len(b) {
		return nil, fmt.Errorf("bad size line %q", n)
	}
	entries := make([]epochEntry, 0, count)
	for i := 0; i < count; i++ {
		l, ok := line()
		f := strings.Fields(l)
		if !ok || len(f) != 2 {
			return nil, fmt.Errorf("bad entry line %q", l)
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || e < 0 || o < 0 {
			return nil, fmt.Errorf("bad entry line %q", l)
		}
		if k := len(entries); k > 0 && (int32(e) <= entries[k-1].epoch || o < entries[k-1].startOffset) {
			return nil, fmt.Errorf("entries out of order at %q", l)
		}
		entries = append(entries, epochEntry{epoch: int32(e), startOffset: o})
	}
	if l, ok := line(); ok && strings.TrimSpace(l) != "" {
		return nil, fmt.Errorf("trailing data %q", l)
	}
	return entries, nil
}

// assign records that epoch starts at startOffset, if that is news: a new epoch, or
// the latest epoch starting earlier. Entries that conflict (an epoch >= epoch or a
// start offset >= startOffset) are removed first (LeaderEpochFileCache.assign).
// It reports whether the cache changed.
func (c *LeaderEpochFileCache) assign(epoch int32, startOffset int64) bool {
	if epoch < 0 || startOffset < 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.epochs); n > 0 {
		last := c.epochs[n-1]
		if last.epoch == epoch && startOffset >= last.startOffset {
			return false
		}
	}
	for n := len(c.epochs); n > 0 && (c.epochs[n-1].epoch >= epoch || c.epochs[n-1].startOffset >= startOffset); n-- {
		c.epochs = c.epochs[:n-1]
	}
	c.epochs = append(c.epochs, epochEntry{epoch: epoch, startOffset: startOffset})
	c.dirty = true
	return true
}

// latestEpoch is the newest epoch, or -1.
func (c *LeaderEpochFileCache) latestEpoch() int32 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.epochs) == 0 {
		return undefinedEpoch
	}
	return c.epochs[len(c.epochs)-1].epoch
}

// endOffsetFor answers OffsetForLeaderEpoch (LeaderEpochFileCache.endOffsetFor): for
// the latest epoch, the log end offset; for an older one, the start offset of the
// next larger epoch, reported under the largest known epoch <= requested; for an
// epoch below all known ones, the first known start offset under the requested
// epoch; and (-1, -1) for an undefined epoch or one newer than all known.
func (c *LeaderEpochFileCache) endOffsetFor(requested int32, logEndOffset int64) (int32, int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := len(c.epochs)
	if requested == undefinedEpoch || n == 0 {
		return undefinedEpoch, undefinedEpochOffset
	}
	if c.epochs[n-1].epoch == requested {
		return requested, logEndOffset
	}
	// First entry with a larger epoch.
	hi := sort.Search(n, func(i int) bool { return c.epochs[i].epoch > requested })
	if hi == n {
		return undefinedEpoch, undefinedEpochOffset
	}
	if hi == 0 {
		return requested, c.epochs[0].startOffset
	}
	return c.epochs[hi-1].epoch, c.epochs[hi].startOffset
}

// truncateFromEnd drops entries starting at or after endOffset (log truncated to it).
func (c *LeaderEpochFileCache) truncateFromEnd(endOffset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.epochs)
	for n > 0 && c.epochs[n-1].startOffset >= endOffset {
		n--
	}
	if n != len(c.epochs) {
		c.epochs = c.epochs[:n]
		c.dirty = true
	}
}

// truncateFromStart drops entries wholly below a new log start offset; the last of
// them is kept with its start moved up to startOffset, so the epoch of the first
// remaining offset stays known (LeaderEpochFileCache.truncateFromStart).
func (c *LeaderEpochFileCache) truncateFromStart(startOffset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.epochs), func(i int) bool { return c.epochs[i].startOffset > startOffset })
	if i == 0 {
		return
	}
	last := c.epochs[i-1]
	if i == 1 && last.startOffset == startOffset {
		return
	}
	last.startOffset = startOffset
	c.epochs = append([]epochEntry{last}, c.epochs[i:]...)
	c.dirty = true
}

// clear empties the cache and removes the checkpoint file
// (LeaderEpochFileCache.clearAndFlush, for a log about to be emptied). Removing
// it, not writing an empty one, is what keeps a crash safe: until the segments
// are gone, recovery rebuilds a missing checkpoint from them, whereas it would
// trust an empty one. The file is written again on the next change.
func (c *LeaderEpochFileCache) clear() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epochs, c.dirty = nil, false
	if err := os.Remove(c.path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("storage: remove %s: %w", c.path, err)
	}
	return nil
}

// flush writes the checkpoint if the cache changed since the last write.
func (c *LeaderEpochFileCache) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n%d\n", leaderEpochCheckpointVersion, len(c.epochs))
	for _, e := range c.epochs {
		fmt.Fprintf(&b, "%d %d\n", e.epoch, e.startOffset)
	}
	if err := writeFileAtomic(c.path, []byte(b.String())); err != nil {
		return fmt.Errorf("storage: write %s: %w", c.path, err)
	}
	c.dirty = false
	return nil
}
