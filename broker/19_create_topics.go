package broker

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/controller"
	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/storage"
)

// CreateTopics: v2-7
//
// Behavior (Kafka's ControllerApis.createTopics + ReplicationControlManager):
// * A name given twice in one request gets one INVALID_REQUEST "Duplicate
//   topic name." and neither copy is created.
// * Per topic, in Kafka's order: the name (Topic.validate, and '.'/'_'
//   collisions with existing topics → INVALID_TOPIC_EXCEPTION), existence
//   (TOPIC_ALREADY_EXISTS), the configs through the topic config catalogue
//   (INVALID_CONFIG), then partitions and replicas.
// * NumPartitions -1 is num.partitions, ReplicationFactor -1 is
//   default.replication.factor. There is one broker, so a replication factor
//   above 1 is INVALID_REPLICATION_FACTOR with the replica placer's message.
// * A manual ReplicaAssignment needs both counts at -1 and may name only
//   this node, once per partition, for partitions 0..n-1.
// * In a cluster the active controller places the replicas over the
//   unfenced brokers and checks the replication factor and a manual
//   assignment against the registered brokers; this broker waits until the
//   topic is in its metadata image and its own replicas exist.
// * ValidateOnly runs every check and fills the response without creating
//   anything (TopicID stays zero: no topic exists).
// * __cluster_metadata is refused as Kafka refuses it; other internal names
//   (__consumer_offsets) are ordinary names to CreateTopics, as in Kafka.
// * TimeoutMillis is not waited on: creation is synchronous.
// * A request whose topics would add more than maxPartitionsPerRequest
//   partitions in all creates nothing: every topic gets POLICY_VIOLATION
//   "Excessively large number of partitions per request."
//   (ReplicationControlManager.validateTotalNumberOfPartitions).
//
// Version notes:
// * v4: -1 partitions / replication factor take the broker defaults (KIP-464)
// * v5: flexible; NumPartitions, ReplicationFactor, Configs in the response (KIP-525)
// * v7: TopicID
//
// With an authorizer: CREATE on the cluster or on the topic, else
// TOPIC_AUTHORIZATION_FAILED; the v5+ configs of a created topic need
// DESCRIBE_CONFIGS on it, else ConfigErrorCode TOPIC_AUTHORIZATION_FAILED.

func (s *Server) handleCreateTopics(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)

	seen := make(map[string]int, len(req.Topics))
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	if s.requestedPartitions(req.Topics, seen) > maxPartitionsPerRequest {
		for _, rt := range req.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic = rt.Topic
			st.ErrorCode, st.ErrorMessage = kerr.PolicyViolation.Code, kmsg.StringPtr("Excessively large number of partitions per request.")
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil
	}
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		switch n := seen[rt.Topic]; {
		case n == 0: // a duplicate already answered
			continue
		case n > 1:
			seen[rt.Topic] = 0
			st.ErrorCode, st.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("Duplicate topic name.")
		case !s.mayCreateTopic(creq, rt.Topic):
			st.ErrorCode, st.ErrorMessage = kerr.TopicAuthorizationFailed.Code, kmsg.StringPtr("Authorization failed.")
			st.NumPartitions, st.ReplicationFactor = -1, -1
		default:
			if err := s.createTopic(rt, req.ValidateOnly, &st); err != nil {
				st.ErrorCode, st.ErrorMessage = errorResult(err)
			} else if !s.authorize(creq, acl.OpDescribeConfigs, acl.ResourceTopic, rt.Topic) {
				// Created, but its configs are not the client's to see.
				st.Configs, st.ConfigErrorCode = nil, kerr.TopicAuthorizationFailed.Code
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// maxPartitionsPerRequest is the most partitions one CreateTopics or
// CreatePartitions request may add, Kafka's MAX_PARTITIONS_PER_BATCH (and
// the controller's MAX_RECORDS_PER_USER_OP). Beyond refusing what Kafka
// refuses, it keeps a single request from opening a log file per partition
// until the process runs out of file descriptors.
const maxPartitionsPerRequest = 10_000

// requestedPartitions is how many partitions the request's topics named once
// would add, counted as validateTotalNumberOfPartitions counts them: the
// manual assignment's size, else num.partitions for -1, else a positive
// count (an invalid one fails that topic later and counts for nothing).
func (s *Server) requestedPartitions(topics []kmsg.CreateTopicsRequestTopic, seen map[string]int) int64 {
	var total int64
	for _, rt := range topics {
		switch {
		case seen[rt.Topic] > 1:
		case len(rt.ReplicaAssignment) > 0:
			total += int64(len(rt.ReplicaAssignment))
		case rt.NumPartitions == -1:
			total += int64(s.cfg.NumPartitions)
		case rt.NumPartitions > 0:
			total += int64(rt.NumPartitions)
		}
	}
	return total
}

// createTopic validates and (unless validateOnly) creates one topic, filling
// st's v5+ fields on success.
func (s *Server) createTopic(rt *kmsg.CreateTopicsRequestTopic, validateOnly bool, st *kmsg.CreateTopicsResponseTopic) error {
	if rt.Topic == "__cluster_metadata" {
		return newAPIError(kerr.TopicAuthorizationFailed, "Authorization failed.")
	}
	if _, ok := s.logs.Topic(rt.Topic); ok {
		return newAPIError(kerr.TopicAlreadyExists, "Topic '%s' already exists.", rt.Topic)
	}
	if err := validateTopicName(rt.Topic); err != nil {
		return err
	}
	if err := s.checkTopicCollision(rt.Topic); err != nil {
		return err
	}
	configs, err := creationConfigs(rt.Configs)
	if err != nil {
		return err
	}
	if s.cluster != nil {
		return s.createTopicInCluster(rt, validateOnly, configs, st)
	}
	partitions, rf, err := s.placement(rt)
	if err != nil {
		return err
	}

	var (
		overrides = configs
		lc        storage.LogConfig
	)
	if validateOnly {
		if lc, err = s.cfg.LogDefaults.Apply(configs); err != nil {
			return err
		}
	} else {
		t, err := s.logs.CreateTopic(rt.Topic, partitions, configs)
		if err != nil {
			if errors.Is(err, storage.ErrTopicExists) {
				return newAPIError(kerr.TopicAlreadyExists, "Topic '%s' already exists.", rt.Topic)
			}
			return err
		}
		st.TopicID = t.ID
		partitions, overrides, lc = int32(len(t.Partitions)), t.Configs, t.Config
	}
	st.NumPartitions, st.ReplicationFactor = partitions, rf
	for i := range topicConfigDefs {
		st.Configs = append(st.Configs, s.effectiveTopicConfig(&topicConfigDefs[i], overrides, lc))
	}
	return nil
}

// createTopicInCluster has the controller place and create the topic
// (Kafka's ControllerApis.createTopics → ReplicationControlManager), then
// makes its logs here.
func (s *Server) createTopicInCluster(rt *kmsg.CreateTopicsRequestTopic, validateOnly bool, configs map[string]string, st *kmsg.CreateTopicsResponseTopic) error {
	spec := controller.CreateTopicSpec{Name: rt.Topic, NumPartitions: rt.NumPartitions, ReplicationFactor: rt.ReplicationFactor, Configs: configs, ValidateOnly: validateOnly}
	if len(rt.ReplicaAssignment) > 0 {
		spec.Assignment = make([][]int32, len(rt.ReplicaAssignment))
		for _, a := range rt.ReplicaAssignment {
			if a.Partition < 0 || int(a.Partition) >= len(spec.Assignment) || spec.Assignment[a.Partition] != nil {
				return newAPIError(kerr.InvalidReplicaAssignment, "partitions should be a consecutive 0-based integer sequence")
			}
			spec.Assignment[a.Partition] = a.Replicas
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), controllerTimeout)
	defer cancel()
	ti, err := s.cluster.ctl.CreateTopic(ctx, spec)
	if err != nil {
		return err
	}
	lc, err := s.cfg.LogDefaults.Apply(configs)
	if err != nil {
		return err
	}
	if !validateOnly {
		s.cluster.sync()
		st.TopicID = ti.ID
	}
	st.NumPartitions = int32(len(ti.Partitions))
	if len(ti.Partitions) > 0 {
		st.ReplicationFactor = int16(len(ti.Partitions[0].Replicas))
	}
	for i := range topicConfigDefs {
		st.Configs = append(st.Configs, s.effectiveTopicConfig(&topicConfigDefs[i], configs, lc))
	}
	return nil
}

// creationConfigs is ReplicationControlManager.computeConfigChanges plus
// LogConfig validation: null values are refused, a name given twice keeps
// its last value.
func creationConfigs(cs []kmsg.CreateTopicsRequestTopicConfig) (map[string]string, error) {
	configs := make(map[string]string, len(cs))
	var nulls []string
	for _, c := range cs {
		if c.Value == nil {
			nulls = append(nulls, c.Name)
			continue
		}
		configs[c.Name] = *c.Value
	}
	if len(nulls) > 0 {
		return nil, newAPIError(kerr.InvalidConfig, "Null value not supported for topic configs: %s", strings.Join(nulls, ","))
	}
	return validateTopicConfigs(configs)
}

// placement returns the partition count and replication factor for a new
// topic, as ReplicationControlManager.createTopic decides them, with this
// node as the only registered broker.
func (s *Server) placement(rt *kmsg.CreateTopicsRequestTopic) (int32, int16, error) {
	if len(rt.ReplicaAssignment) == 0 {
		partitions, rf := rt.NumPartitions, rt.ReplicationFactor
		switch {
		case rf < -1 || rf == 0:
			return 0, 0, newAPIError(kerr.InvalidReplicationFactor, "Replication factor must be larger than 0, or -1 to use the default value.")
		case partitions < -1 || partitions == 0:
			return 0, 0, newAPIError(kerr.InvalidPartitions, "Number of partitions was set to an invalid non-positive value.")
		}
		if partitions == -1 {
			partitions = s.cfg.NumPartitions
		}
		if rf == -1 {
			rf = s.cfg.DefaultReplicationFactor
		}
		if rf > 1 { // StripedReplicaPlacer with one registered broker
			return 0, 0, newAPIError(kerr.InvalidReplicationFactor,
				"Unable to replicate the partition %d time(s): The target replication factor of %d cannot be reached because only 1 broker(s) are registered.", rf, rf)
		}
		return partitions, rf, nil
	}

	if rt.ReplicationFactor != -1 {
		return 0, 0, newAPIError(kerr.InvalidRequest, "A manual partition assignment was specified, but replication factor was not set to -1.")
	}
	if rt.NumPartitions != -1 {
		return 0, 0, newAPIError(kerr.InvalidRequest, "A manual partition assignment was specified, but numPartitions was not set to -1.")
	}
	assigned := make(map[int32]bool, len(rt.ReplicaAssignment))
	rf := -1
	for _, a := range rt.ReplicaAssignment {
		if assigned[a.Partition] {
			return 0, 0, newAPIError(kerr.InvalidReplicaAssignment, "Found multiple manual partition assignments for partition %d", a.Partition)
		}
		assigned[a.Partition] = true
		if err := s.checkManualAssignment(a.Replicas, rf); err != nil {
			return 0, 0, err
		}
		rf = len(a.Replicas)
	}
	for p := range int32(len(assigned)) {
		if !assigned[p] {
			return 0, 0, newAPIError(kerr.InvalidReplicaAssignment, "partitions should be a consecutive 0-based integer sequence")
		}
	}
	return int32(len(assigned)), int16(rf), nil
}

// checkManualAssignment is ReplicationControlManager.validateManualPartitionAssignment;
// rf is the previous partitions' replica count, -1 for the first.
func (s *Server) checkManualAssignment(replicas []int32, rf int) error {
	if len(replicas) == 0 {
		return newAPIError(kerr.InvalidReplicaAssignment, "The manual partition assignment includes an empty replica list.")
	}
	sorted := slices.Sorted(slices.Values(replicas))
	for i, id := range sorted {
		if id != s.cfg.NodeID {
			return newAPIError(kerr.InvalidReplicaAssignment, "The manual partition assignment includes broker %d, but no such broker is registered.", id)
		}
		if i > 0 && sorted[i-1] == id {
			return newAPIError(kerr.InvalidReplicaAssignment, "The manual partition assignment includes the broker %d more than once.", id)
		}
	}
	if rf >= 0 && len(replicas) != rf {
		return newAPIError(kerr.InvalidReplicaAssignment,
			"The manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have %d replica(s).", len(replicas), rf)
	}
	return nil
}

// validateTopicName is Kafka's Topic.validate: INVALID_TOPIC_EXCEPTION with
// its messages.
func validateTopicName(name string) error {
	if problem := storage.TopicNameProblem(name); problem != "" {
		return newAPIError(kerr.InvalidTopicException, "%s", problem)
	}
	return nil
}

// checkTopicCollision refuses a name that equals an existing topic's once
// '.' and '_' are unified (metric names cannot tell them apart), as
// ReplicationControlManager.validateNewTopicNames does.
func (s *Server) checkTopicCollision(name string) error {
	if !strings.ContainsAny(name, "._") {
		return nil
	}
	unified := strings.ReplaceAll(name, ".", "_")
	for _, t := range s.logs.Topics() {
		if t.Name != name && strings.ReplaceAll(t.Name, ".", "_") == unified {
			return newAPIError(kerr.InvalidTopicException, "Topic '%s' collides with existing topic: %s", name, t.Name)
		}
	}
	return nil
}
