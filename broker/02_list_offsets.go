package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
)

// ListOffsets: v1-10
//
// Behavior:
// * Timestamp -2 (earliest) and -4 (earliest local, KIP-405) answer the log
//   start offset; -1 (latest) the high watermark, or the last stable offset
//   for read_committed; -3 (max timestamp, KIP-734) the record with the
//   largest timestamp; -5 (latest tiered, KIP-1005) -1, as Kafka answers for
//   a topic without tiered storage; any other timestamp the first record at
//   or after it (offset -1 when there is none).
// * CurrentLeaderEpoch is checked as in Fetch (KIP-320).
// * A partition asked for twice in one request gets INVALID_REQUEST.
// * With an authorizer, each topic needs DESCRIBE: TOPIC_AUTHORIZATION_FAILED.
//
// Version notes:
// * v1: one offset per partition
// * v2: IsolationLevel
// * v4: LeaderEpoch / CurrentLeaderEpoch
// * v6: flexible
// * v7: -3 max timestamp; v8: -4; v9: -5
// * v10: TimeoutMillis (for tiered storage lookups; nothing here waits)

const (
	listOffsetsLatest         = -1
	listOffsetsEarliest       = -2
	listOffsetsMaxTimestamp   = -3
	listOffsetsEarliestLocal  = -4
	listOffsetsLatestTiered   = -5
	listOffsetsUnknownOffset  = -1
	listOffsetsUnknownTime    = -1
	listOffsetsUndefinedEpoch = -1
)

func (s *Server) handleListOffsets(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)

	describable := s.authorizedTopics(creq, acl.OpDescribe, namesOf(req.Topics, func(t kmsg.ListOffsetsRequestTopic) string { return t.Topic }))
	seen := make(map[string]map[int32]bool)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		if seen[rt.Topic] == nil {
			seen[rt.Topic] = make(map[int32]bool)
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Offset, sp.Timestamp, sp.LeaderEpoch = listOffsetsUnknownOffset, listOffsetsUnknownTime, listOffsetsUndefinedEpoch
			if seen[rt.Topic][rp.Partition] {
				sp.ErrorCode = kerr.InvalidRequest.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			seen[rt.Topic][rp.Partition] = true
			if !describable.has(rt.Topic) {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			} else if err := s.listOffset(req, rt.Topic, rp, &sp); err != nil {
				sp.ErrorCode = err.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (s *Server) listOffset(req *kmsg.ListOffsetsRequest, topic string, rp kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition) *kerr.Error {
	t, _ := s.logs.Topic(topic)
	log, st, lerr := s.leaderLog(t, rp.Partition, rp.CurrentLeaderEpoch)
	if lerr != nil {
		return lerr
	}
	// Clients may not see past the last fetchable offset, not even by time.
	lastFetchable := log.HighWatermark()
	if req.IsolationLevel == readCommitted {
		lastFetchable = log.LastStableOffset()
	}
	var (
		offset, ts = int64(listOffsetsUnknownOffset), int64(listOffsetsUnknownTime)
		ok         = true
		err        error
	)
	switch rp.Timestamp {
	case listOffsetsEarliest, listOffsetsEarliestLocal:
		offset = log.LogStartOffset()
	case listOffsetsLatest:
		offset = lastFetchable
	case listOffsetsMaxTimestamp:
		offset, ts, ok, err = log.OffsetOfMaxTimestamp()
	case listOffsetsLatestTiered:
		ok = false
	default:
		if rp.Timestamp < 0 {
			return kerr.InvalidRequest
		}
		offset, ts, ok, err = log.OffsetForTimestamp(rp.Timestamp)
	}
	if err != nil {
		return protocol.KafkaError(err)
	}
	byTime := rp.Timestamp >= 0 || rp.Timestamp == listOffsetsMaxTimestamp
	if !ok || (byTime && offset >= lastFetchable) {
		return nil // Kafka answers "no such offset" with -1 and no error
	}
	sp.Offset, sp.Timestamp = offset, ts
	sp.LeaderEpoch = max(log.LatestEpoch(), st.LeaderEpoch)
	return nil
}
