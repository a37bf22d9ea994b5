package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// OffsetForLeaderEpoch: v2-4
//
// Behavior (ReplicaManager.lastOffsetForLeaderEpoch,
// Partition.lastOffsetForLeaderEpoch, LeaderEpochFileCache.endOffsetFor):
// * CurrentLeaderEpoch (KIP-320) is checked as in Fetch: -1 skips it, an
//   older epoch is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH.
// * The answer is the leader-epoch cache's: the latest epoch answers the
//   log end offset; an older epoch the start offset of the next one (paired
//   with the largest epoch at or below the request); an epoch older than
//   every entry the start offset of the first; epoch -1, an empty cache, or
//   an epoch newer than any known answers LeaderEpoch -1 / EndOffset -1
//   (UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET) with no error.
// * Consumers (ReplicaID -1, KIP-320 truncation checks) and followers
//   (KIP-101) are answered alike, from the leader only, as Kafka does.
// * Unknown topics or partitions get UNKNOWN_TOPIC_OR_PARTITION.
//
// Version notes:
// * v2: CurrentLeaderEpoch
// * v3: ReplicaID
// * v4: flexible
//
// With an authorizer: CLUSTER_ACTION on the cluster (followers)
// covers every topic; otherwise DESCRIBE on each, else
// TOPIC_AUTHORIZATION_FAILED.

func (s *Server) handleOffsetForLeaderEpoch(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)

	var describable authorizedSet // nil: all, for followers
	if s.authz != nil && !s.authorizeCluster(creq, acl.OpClusterAction) {
		describable = s.authorizedTopics(creq, acl.OpDescribe, namesOf(req.Topics, func(t kmsg.OffsetForLeaderEpochRequestTopic) string { return t.Topic }))
	}
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition() // LeaderEpoch, EndOffset: -1
			sp.Partition = rp.Partition
			if !describable.has(rt.Topic) {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			} else if err := s.offsetForLeaderEpoch(rt.Topic, rp, &sp); err != nil {
				sp.ErrorCode = err.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (s *Server) offsetForLeaderEpoch(topic string, rp kmsg.OffsetForLeaderEpochRequestTopicPartition, sp *kmsg.OffsetForLeaderEpochResponseTopicPartition) *kerr.Error {
	t, _ := s.logs.Topic(topic)
	log, _, err := s.leaderLog(t, rp.Partition, rp.CurrentLeaderEpoch) // fetchOnlyFromLeader = true
	if err != nil {
		return err
	}
	sp.LeaderEpoch, sp.EndOffset = log.EndOffsetForEpoch(rp.LeaderEpoch)
	return nil
}
