package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kbroker/kbroker/internal/atomicfile"
)

// openFile is os.OpenFile for a segment's files, which no network poller can
// wait on: os.OpenFile offers every file to the poller (fcntl, an epoll_ctl
// refused with EPERM, fcntl back), four syscalls per partition opened at
// start-up for nothing. os.NewFile on a blocking descriptor skips that.
func openFile(path string, flag int, perm uint32) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, flag|syscall.O_CLOEXEC, perm)
		if err == nil {
			return os.NewFile(uintptr(fd), path), nil
		}
		if !errors.Is(err, syscall.EINTR) {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
	}
}

// File name suffixes (Kafka LogFileUtils / UnifiedLog).
const (
	logFileSuffix       = ".log"
	indexFileSuffix     = ".index"
	timeIndexFileSuffix = ".timeindex"
	txnIndexFileSuffix  = ".txnindex"
	deletedFileSuffix   = ".deleted"           // a segment file scheduled for removal
	cleanedFileSuffix   = ".cleaned"           // LogCleaner output being written: deleted on recovery
	swapFileSuffix      = ".swap"              // LogCleaner output being swapped in: recovery completes the swap
	tmpFileSuffix       = atomicfile.TmpSuffix // a checkpoint being written
	deleteDirSuffix     = "-delete"            // a partition directory of a deleted topic

	// cleanShutdownFile marks a data dir whose logs were all flushed and closed
	// (LogLoader.CLEAN_SHUTDOWN_FILE): its presence lets the next start skip scanning.
	cleanShutdownFile = ".kafka_cleanshutdown"

	// cleanerCheckpointFile is LogCleanerManager's offset checkpoint: each
	// compacted log's first dirty offset, one file per data dir.
	cleanerCheckpointFile = "cleaner-offset-checkpoint"

	// leaderEpochCheckpointFile is LeaderEpochCheckpointFile.LEADER_EPOCH_CHECKPOINT_FILENAME.
	leaderEpochCheckpointFile = "leader-epoch-checkpoint"
)

// filenamePrefixFromOffset is the 20-digit zero-padded base offset segment files are
// named by, so that a directory listing sorts by offset (LogFileUtils).
func filenamePrefixFromOffset(offset int64) string {
	return fmt.Sprintf("%020d", offset)
}

func segmentFile(dir string, baseOffset int64, suffix string) string {
	return filepath.Join(dir, filenamePrefixFromOffset(baseOffset)+suffix)
}

// offsetFromFileName parses "<20 digits><suffix>".
func offsetFromFileName(name, suffix string) (int64, bool) {
	prefix, ok := strings.CutSuffix(name, suffix)
	if !ok || len(prefix) != 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(prefix, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// partitionDirName is "<topic>-<partition>", Kafka's log directory name.
func partitionDirName(topic string, partition int32) string {
	return topic + "-" + strconv.FormatInt(int64(partition), 10)
}

// parsePartitionDirName splits "<topic>-<partition>"; topic names may contain '-',
// the partition is the part after the last one.
func parsePartitionDirName(name string) (string, int32, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != name[i+1:] {
		return "", 0, false
	}
	if validateTopicName(name[:i]) != nil {
		return "", 0, false
	}
	return name[:i], int32(p), true
}

// deleteDirName is "<topic>-<partition>.<uid>-delete", the topic truncated so the
// name stays within 255 bytes (UnifiedLog.logDeleteDirName).
func deleteDirName(topic string, partition int32, uid string) string {
	suffix := "-" + strconv.FormatInt(int64(partition), 10) + "." + uid + deleteDirSuffix
	if n := 255 - len(suffix); len(topic) > n {
		topic = topic[:n]
	}
	return topic + suffix
}

// syncDir and writeFileAtomic: see package atomicfile.
var (
	syncDir         = atomicfile.SyncDir
	writeFileAtomic = atomicfile.Write
)
