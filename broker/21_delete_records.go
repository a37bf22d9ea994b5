package broker

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
)

// DeleteRecords: v0-2
//
// Behavior (ReplicaManager.deleteRecords, Partition.deleteRecordsOnLeader):
// * Offset -1 means the high watermark; any other negative offset, or one
//   above the high watermark, is OFFSET_OUT_OF_RANGE.
// * The log start offset only moves forward: an offset at or below it is a
//   no-op that still succeeds. LowWatermark is the log start offset after
//   the call (-1 on error); whole segments below it are deleted by storage.
// * A topic whose cleanup.policy lacks "delete" (compact only, or the empty
//   list of Kafka 4.2) gets POLICY_VIOLATION; an internal topic
//   INVALID_TOPIC_EXCEPTION (ReplicaManager.deleteRecordsOnLocalLog).
// * Unknown topics or partitions get UNKNOWN_TOPIC_OR_PARTITION.
// * On one broker nothing waits for followers (DelayedDeleteRecords), so
//   TimeoutMillis is not needed.
//
// Version notes:
// * v1: no change
// * v2: flexible

// deleteRecordsHighWatermark is DeleteRecordsRequest.HIGH_WATERMARK.
const deleteRecordsHighWatermark = -1

//
// With an authorizer: DELETE on the topic, else
// TOPIC_AUTHORIZATION_FAILED.

func (s *Server) handleDeleteRecords(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)

	deletable := s.authorizedTopics(creq, acl.OpDelete, namesOf(req.Topics, func(t kmsg.DeleteRecordsRequestTopic) string { return t.Topic }))
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			if !deletable.has(rt.Topic) {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			low, err := s.deleteRecords(rt.Topic, rp.Partition, rp.Offset)
			if err != nil {
				sp.ErrorCode = err.Code
			} else {
				sp.LowWatermark = low
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (s *Server) deleteRecords(topic string, p int32, offset int64) (int64, *kerr.Error) {
	t, _ := s.logs.Topic(topic)
	log, _, lerr := s.leaderLog(t, p, -1)
	if lerr != nil {
		return -1, lerr
	}
	if isInternalTopic(topic) {
		return -1, kerr.InvalidTopicException
	}
	if !hasCleanupPolicy(log.Config().CleanupPolicy, "delete") {
		return -1, kerr.PolicyViolation
	}
	if offset == deleteRecordsHighWatermark {
		offset = log.HighWatermark()
	}
	if offset < 0 {
		return -1, kerr.OffsetOutOfRange
	}
	low, err := log.DeleteRecordsBefore(offset)
	if err != nil {
		return -1, protocol.KafkaError(err)
	}
	return low, nil
}

// hasCleanupPolicy reports whether the cleanup.policy list (e.g.
// "compact,delete") contains want, as LogConfig.delete/compact do.
func hasCleanupPolicy(policy, want string) bool {
	for p := range strings.SplitSeq(policy, ",") {
		if strings.TrimSpace(p) == want {
			return true
		}
	}
	return false
}
