package broker

import (
	"math"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/kbroker/kbroker/internal/acl"
)

// DescribeLogDirs: v1-4
//
// Behavior (KafkaApis.handleDescribeLogDirsRequest,
// ReplicaManager.describeLogDirs):
// * One log directory, log.dirs made absolute.
// * Null topics means every partition. Otherwise, as Kafka's groupBy does,
//   every topic in the directory is listed and only the requested
//   partitions carry entries, so a topic not asked for appears with no
//   partitions; names that do not exist are simply absent.
// * Size is the bytes of the partition's segments; OffsetLag is
//   max(HW - LEO, 0), always 0 on a leader; IsFuture is false (no
//   AlterReplicaLogDirs).
// * TotalBytes / UsableBytes come from statfs of the directory, as Java's
//   FileStore.getTotalSpace / getUsableSpace; a directory statfs cannot
//   read is KAFKA_STORAGE_ERROR.
//
// Version notes:
// * v1: no change (throttle after the response)
// * v2: flexible
// * v3: top-level ErrorCode
// * v4: TotalBytes, UsableBytes
//
// With an authorizer: DESCRIBE on the cluster, else
// CLUSTER_AUTHORIZATION_FAILED (v3+ ErrorCode; older versions get no
// directories), as KafkaApis.handleDescribeLogDirsRequest.

func (s *Server) handleDescribeLogDirs(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	if !s.authorizeCluster(creq, acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}

	var wanted map[string]map[int32]bool // nil: all
	if req.Topics != nil {
		wanted = make(map[string]map[int32]bool)
		for _, rt := range req.Topics {
			if wanted[rt.Topic] == nil {
				wanted[rt.Topic] = make(map[int32]bool)
			}
			for _, p := range rt.Partitions {
				wanted[rt.Topic][p] = true
			}
		}
	}

	dir := kmsg.NewDescribeLogDirsResponseDir() // TotalBytes, UsableBytes: -1
	dir.Dir = s.cfg.LogDir
	if abs, err := filepath.Abs(s.cfg.LogDir); err == nil {
		dir.Dir = abs
	}
	total, usable, err := volumeSpace(dir.Dir)
	if err != nil {
		s.logger.Warn("describe log dirs: statfs failed", "dir", dir.Dir, "err", err)
		dir.ErrorCode = kerr.KafkaStorageError.Code
		resp.Dirs = append(resp.Dirs, dir)
		return resp, nil
	}
	dir.TotalBytes, dir.UsableBytes = total, usable

	for _, t := range s.logs.Topics() {
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = t.Name
		dt.Partitions = []kmsg.DescribeLogDirsResponseDirTopicPartition{}
		for p, log := range t.Partitions {
			if wanted != nil && !wanted[t.Name][int32(p)] {
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition = int32(p)
			dp.Size = log.Size()
			dp.OffsetLag = max(log.HighWatermark()-log.LogEndOffset(), 0)
			dt.Partitions = append(dt.Partitions, dp)
		}
		dir.Topics = append(dir.Topics, dt)
	}
	resp.Dirs = append(resp.Dirs, dir)
	return resp, nil
}

// volumeSpace returns the total and usable bytes of the file system holding
// dir. Java multiplies by f_frsize; Frsize exists only in Linux's Statfs_t
// and equals f_bsize on local file systems, so Bsize keeps this portable.
// Sizes beyond int64 are clamped as ReplicaManager.adjustForLargeFileSystems
// does.
func volumeSpace(dir string) (total, usable int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return -1, -1, err
	}
	bsize := uint64(st.Bsize)
	return clampInt64(uint64(st.Blocks), bsize), clampInt64(uint64(st.Bavail), bsize), nil
}

func clampInt64(blocks, bsize uint64) int64 {
	if bsize != 0 && blocks > math.MaxInt64/bsize {
		return math.MaxInt64
	}
	return int64(blocks * bsize)
}
