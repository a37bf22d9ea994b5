package broker

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/storage"
)

// DescribeTopicPartitions: v0
//
// Behavior (DescribeTopicPartitionsRequestHandler,
// KRaftMetadataCache.getTopicMetadataForDescribeTopicResponse, KIP-966):
// * No topics listed means every topic. Topics are deduplicated, those
//   sorting before the cursor's topic dropped, and the rest answered in name
//   order.
// * At most min(ResponsePartitionLimit, 2000) partitions are returned
//   (max.request.partition.size.limit). The cursor's topic starts at the
//   cursor's partition, every other topic at 0. When a topic's partitions do
//   not all fit, it is answered up to the limit and NextCursor names it and
//   its first partition left out; when the limit is used up exactly,
//   NextCursor names the next topic at partition 0 (which need not exist).
// * Listed topics that do not exist get UNKNOWN_TOPIC_OR_PARTITION, or
//   INVALID_TOPIC_EXCEPTION for an illegal name, and use none of the limit;
//   when listing all topics there are none.
// * A cursor naming a topic missing from a non-empty list is
//   INVALID_REQUEST for every listed topic, as Kafka's handleError answers
//   its InvalidRequestException.
// * Partitions carry leader, epoch, replicas and ISR from the partition
//   state; EligibleLeaderReplicas, LastKnownELR and OfflineReplicas are
//   empty (no ELR, no offline replicas on one node).
// * TopicAuthorizedOperations is always filled: without an authorizer that
//   is every topic operation, as AuthHelper.authorizedOperations gives;
//   with one, the operations the principal may perform.
// * With an authorizer, all-topics requests list the topics the principal
//   may DESCRIBE; a named one it may not is TOPIC_AUTHORIZATION_FAILED.
//
// Version notes:
// * v0: flexible; the only version

// maxRequestPartitionSizeLimit is Kafka's max.request.partition.size.limit
// default.
const maxRequestPartitionSizeLimit = 2000

// topicAuthorizedOperations is Utils.to32BitField over
// AclEntry.supportedOperations(TOPIC).
var topicAuthorizedOperations = acl.OperationsBitField(acl.SupportedOperations[acl.ResourceTopic])

func (s *Server) handleDescribeTopicPartitions(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DescribeTopicPartitionsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeTopicPartitionsResponse)

	all := len(req.Topics) == 0
	cursorTopic, cursorPartition := "", int32(0)
	if req.Cursor != nil {
		cursorTopic, cursorPartition = req.Cursor.Topic, req.Cursor.Partition
	}

	var names []string
	if all {
		for _, t := range s.logs.Topics() {
			if t.Name >= cursorTopic && s.authorize(creq, acl.OpDescribe, acl.ResourceTopic, t.Name) {
				names = append(names, t.Name)
			}
		}
	} else {
		for _, rt := range req.Topics {
			if rt.Topic >= cursorTopic {
				names = append(names, rt.Topic)
			}
		}
		if req.Cursor != nil && !slices.Contains(names, cursorTopic) {
			for _, rt := range req.Topics {
				st := kmsg.NewDescribeTopicPartitionsResponseTopic()
				st.Topic = kmsg.StringPtr(rt.Topic)
				st.ErrorCode = kerr.InvalidRequest.Code
				st.Partitions = []kmsg.DescribeTopicPartitionsResponseTopicPartition{}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)

	remaining := min(int64(req.ResponsePartitionLimit), maxRequestPartitionSizeLimit)
	for _, name := range names {
		if remaining <= 0 {
			if remaining == 0 {
				resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name, Partition: 0}
			}
			break
		}
		if !all && !s.authorize(creq, acl.OpDescribe, acl.ResourceTopic, name) {
			st := describeTopicPartitionsError(name)
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, st)
			continue
		}
		t, ok := s.logs.Topic(name)
		if !ok {
			if !all {
				resp.Topics = append(resp.Topics, describeTopicPartitionsError(name))
			}
			continue
		}
		start := int32(0)
		if name == cursorTopic {
			start = cursorPartition
		}
		st, next := s.describeTopicPartitions(t, start, remaining)
		st.AuthorizedOperations = s.authorizedOperations(creq, acl.ResourceTopic, t.Name)
		resp.Topics = append(resp.Topics, st)
		if next != -1 {
			resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: name, Partition: next}
			break
		}
		remaining -= int64(len(st.Partitions))
	}
	return resp, nil
}

// describeTopicPartitions answers partitions [start, min(count,
// start+maxCount)) of t and the first partition left out, -1 if none
// (KRaftMetadataCache.getPartitionMetadataForDescribeTopicResponse,
// including its arithmetic for odd cursors).
func (s *Server) describeTopicPartitions(t *storage.Topic, start int32, maxCount int64) (kmsg.DescribeTopicPartitionsResponseTopic, int32) {
	st := kmsg.NewDescribeTopicPartitionsResponseTopic()
	st.Topic = kmsg.StringPtr(t.Name)
	st.TopicID = t.ID
	st.IsInternal = isInternalTopic(t.Name)
	st.AuthorizedOperations = topicAuthorizedOperations
	st.Partitions = []kmsg.DescribeTopicPartitionsResponseTopicPartition{}

	count := int64(len(t.Partitions))
	upper := min(count, int64(start)+maxCount)
	next := int32(-1)
	if upper < count {
		next = int32(upper)
	}
	for p := int64(start); p < upper; p++ {
		if p < 0 {
			continue // no such partition: Kafka logs and skips it
		}
		ps := s.partitionState(t, int32(p))
		sp := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
		sp.Partition = int32(p)
		sp.LeaderID = ps.Leader
		sp.LeaderEpoch = ps.LeaderEpoch
		sp.Replicas = ps.Replicas
		sp.ISR = ps.ISR
		sp.EligibleLeaderReplicas = []int32{}
		sp.LastKnownELR = []int32{}
		sp.OfflineReplicas = []int32{}
		st.Partitions = append(st.Partitions, sp)
	}
	return st, next
}

func describeTopicPartitionsError(name string) kmsg.DescribeTopicPartitionsResponseTopic {
	st := kmsg.NewDescribeTopicPartitionsResponseTopic()
	st.Topic = kmsg.StringPtr(name)
	st.ErrorCode = kerr.UnknownTopicOrPartition.Code
	if storage.TopicNameProblem(name) != "" {
		st.ErrorCode = kerr.InvalidTopicException.Code
	}
	st.IsInternal = isInternalTopic(name)
	st.AuthorizedOperations = topicAuthorizedOperations
	st.Partitions = []kmsg.DescribeTopicPartitionsResponseTopicPartition{}
	return st
}

// isInternalTopic mirrors Topic.isInternal.
func isInternalTopic(name string) bool {
	switch name {
	case "__consumer_offsets", "__transaction_state", "__share_group_state":
		return true
	}
	return false
}
