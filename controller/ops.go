package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// Operations from any node (Kafka's NodeToControllerChannelManager): each
// is a controller request, run locally when this node is the active
// controller and otherwise sent over the active controller's listener. A
// NOT_CONTROLLER answer or a connection error is retried with backoff
// until ctx ends; the operation then waits until this node's image has
// applied the change, so the caller sees it. Errors are *kerr.Error values
// (wrapped with a message).

// Backoff between retries while there is no (reachable) active controller.
const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
)

// route sends req to the active controller, retrying until it answers
// with anything but NOT_CONTROLLER.
func (c *Controller) route(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	backoff := minBackoff
	for {
		resp, err := c.tryActive(ctx, req)
		if err == nil && !notController(resp) {
			return resp, nil
		}
		if err != nil {
			c.logger.Debug("controller request failed", "api", kmsg.NameForKey(req.Key()), "err", err)
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errNotController(c.ActiveID())
			}
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-c.closing:
			return nil, errors.New("controller: closed")
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (c *Controller) tryActive(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	if c.active.Load() {
		return c.handle(req), nil
	}
	id := c.ActiveID()
	if id < 0 || id == c.cfg.NodeID {
		return nil, errNotController(id) // election under way, or our barrier
	}
	cl, err := c.client(ctx, id)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := cl.Request(rctx, req)
	if err != nil {
		c.dropClient(id, cl)
		return nil, err
	}
	return resp, nil
}

func (c *Controller) client(ctx context.Context, id int32) (*protocol.Client, error) {
	c.clientsMu.Lock()
	defer c.clientsMu.Unlock()
	if cl := c.clients[id]; cl != nil {
		return cl, nil
	}
	v, ok := c.voters[id]
	if !ok {
		return nil, fmt.Errorf("controller: active controller %d is not a voter", id)
	}
	dctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	cl, err := protocol.Dial(dctx, v.Addr(), "kbroker-controller-"+strconv.Itoa(int(c.cfg.NodeID)))
	if err != nil {
		return nil, err
	}
	c.clients[id] = cl
	return cl, nil
}

func (c *Controller) dropClient(id int32, cl *protocol.Client) {
	c.clientsMu.Lock()
	defer c.clientsMu.Unlock()
	if c.clients[id] == cl {
		delete(c.clients, id)
	}
	cl.Close()
}

// notController reports whether any error in resp is NOT_CONTROLLER.
func notController(resp kmsg.Response) bool {
	nc := kerr.NotController.Code
	switch r := resp.(type) {
	case *kmsg.CreateTopicsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.DeleteTopicsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.CreatePartitionsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.AlterConfigsResponse:
		for _, t := range r.Resources {
			if t.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.AlterPartitionResponse:
		return r.ErrorCode == nc
	case *kmsg.AlterUserSCRAMCredentialsResponse:
		for _, u := range r.Results {
			if u.ErrorCode == nc {
				return true
			}
		}
	case *kmsg.ElectLeadersResponse:
		return r.ErrorCode == nc
	case *kmsg.AlterPartitionAssignmentsResponse:
		return r.ErrorCode == nc
	case *kmsg.BrokerRegistrationResponse:
		return r.ErrorCode == nc
	case *kmsg.BrokerHeartbeatResponse:
		return r.ErrorCode == nc
	case *kmsg.AllocateProducerIDsResponse:
		return r.ErrorCode == nc
	case *kmsg.CreateACLsResponse:
		return slices.ContainsFunc(r.Results, func(r kmsg.CreateACLsResponseResult) bool { return r.ErrorCode == nc })
	case *kmsg.DeleteACLsResponse:
		return slices.ContainsFunc(r.Results, func(r kmsg.DeleteACLsResponseResult) bool { return r.ErrorCode == nc })
	}
	return false
}

// kafkaErr turns a response error code and message into an error.
func kafkaErr(code int16, msg *string) error {
	if code == 0 {
		return nil
	}
	ke := kerr.ErrorForCode(code)
	var e *kerr.Error
	if !errors.As(ke, &e) {
		e = kerr.UnknownServerError
	}
	if msg != nil && *msg != "" {
		return fmt.Errorf("%w (%s)", e, *msg)
	}
	return e
}

// waitApplied waits until this node's image has applied offset.
func (c *Controller) waitApplied(ctx context.Context, offset uint64) (*Image, error) {
	img, err := c.fsm.waitOffset(ctx, offset)
	if err != nil {
		return nil, fmt.Errorf("controller: waiting for metadata offset %d: %w", offset, err)
	}
	return img, nil
}

// CreateTopic creates a topic: TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION,
// INVALID_REPLICATION_FACTOR (more than the unfenced brokers),
// INVALID_PARTITIONS, INVALID_CONFIG, INVALID_REPLICA_ASSIGNMENT. Replicas
// are striped over the unfenced brokers from a random start; the leader is
// the first replica, the ISR all replicas, epochs 0. With ValidateOnly
// nothing is created and the returned topic has a zero ID and, per
// partition, only as many (zero) replicas as would be placed.
func (c *Controller) CreateTopic(ctx context.Context, spec CreateTopicSpec) (*TopicImage, error) {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = 7
	req.ValidateOnly = spec.ValidateOnly
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = spec.Name, spec.NumPartitions, spec.ReplicationFactor
	for i, reps := range spec.Assignment {
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, kmsg.CreateTopicsRequestTopicReplicaAssignment{Partition: int32(i), Replicas: reps})
	}
	for k, v := range spec.Configs {
		rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: k, Value: kmsg.StringPtr(v)})
	}
	req.Topics = append(req.Topics, rt)
	kresp, err := c.route(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.CreateTopicsResponse)
	if len(resp.Topics) != 1 {
		return nil, kerrf(kerr.UnknownServerError, "%d topics in the CreateTopics response", len(resp.Topics))
	}
	st := resp.Topics[0]
	if err := kafkaErr(st.ErrorCode, st.ErrorMessage); err != nil {
		return nil, err
	}
	if spec.ValidateOnly {
		t := &TopicImage{Name: spec.Name, Configs: spec.Configs, Partitions: make([]PartitionRegistration, max(st.NumPartitions, 0))}
		for i := range t.Partitions {
			t.Partitions[i] = PartitionRegistration{Replicas: make([]int32, max(st.ReplicationFactor, 0)), Leader: -1}
		}
		return t, nil
	}
	img, err := c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags))
	if err != nil {
		return nil, err
	}
	t := img.TopicsByID[st.TopicID]
	if t == nil {
		// Deleted again before this node caught up.
		return nil, kerrf(kerr.UnknownTopicOrPartition, "topic %q was deleted", spec.Name)
	}
	return t, nil
}

// DeleteTopic deletes a topic: UNKNOWN_TOPIC_OR_PARTITION.
func (c *Controller) DeleteTopic(ctx context.Context, name string) error {
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version = 6
	req.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr(name)}}
	kresp, err := c.route(ctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.DeleteTopicsResponse)
	if len(resp.Topics) != 1 {
		return kerrf(kerr.UnknownServerError, "%d topics in the DeleteTopics response", len(resp.Topics))
	}
	if err := kafkaErr(resp.Topics[0].ErrorCode, resp.Topics[0].ErrorMessage); err != nil {
		return err
	}
	_, err = c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags))
	return err
}

// CreatePartitions grows a topic to total partitions, placed like
// CreateTopic or by assignment (one replica list per new partition):
// UNKNOWN_TOPIC_OR_PARTITION, INVALID_PARTITIONS, INVALID_REPLICA_ASSIGNMENT,
// INVALID_REPLICATION_FACTOR.
func (c *Controller) CreatePartitions(ctx context.Context, name string, total int32, assignment [][]int32) error {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.Version = 3
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = name, total
	for _, reps := range assignment {
		rt.Assignment = append(rt.Assignment, kmsg.CreatePartitionsRequestTopicAssignment{Replicas: reps})
	}
	req.Topics = append(req.Topics, rt)
	kresp, err := c.route(ctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.CreatePartitionsResponse)
	if len(resp.Topics) != 1 {
		return kerrf(kerr.UnknownServerError, "%d topics in the CreatePartitions response", len(resp.Topics))
	}
	if err := kafkaErr(resp.Topics[0].ErrorCode, resp.Topics[0].ErrorMessage); err != nil {
		return err
	}
	_, err = c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags))
	return err
}

// SetTopicConfigs replaces a topic's config overrides:
// UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG.
func (c *Controller) SetTopicConfigs(ctx context.Context, name string, configs map[string]string) error {
	req := kmsg.NewPtrAlterConfigsRequest()
	req.Version = 2
	rr := kmsg.NewAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, name
	for k, v := range configs {
		rr.Configs = append(rr.Configs, kmsg.AlterConfigsRequestResourceConfig{Name: k, Value: kmsg.StringPtr(v)})
	}
	req.Resources = append(req.Resources, rr)
	kresp, err := c.route(ctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.AlterConfigsResponse)
	if len(resp.Resources) != 1 {
		return kerrf(kerr.UnknownServerError, "%d resources in the AlterConfigs response", len(resp.Resources))
	}
	if err := kafkaErr(resp.Resources[0].ErrorCode, resp.Resources[0].ErrorMessage); err != nil {
		return err
	}
	_, err = c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags))
	return err
}

// AlterPartition is this node's broker, as the partition's leader, asking
// for a new ISR (Kafka's AlterPartition): FENCED_LEADER_EPOCH,
// INVALID_UPDATE_VERSION (partition epoch mismatch), INELIGIBLE_REPLICA (a
// fenced or shutting-down broker added), NOT_LEADER_OR_FOLLOWER,
// UNKNOWN_TOPIC_OR_PARTITION. It returns the new registration (its
// PartitionEpoch bumped, LeaderEpoch unchanged).
func (c *Controller) AlterPartition(ctx context.Context, topic string, partition int32, leaderEpoch, partitionEpoch int32, newISR []int32) (PartitionRegistration, error) {
	var none PartitionRegistration
	t := c.Image().Topics[topic]
	if t == nil {
		return none, kerrf(kerr.UnknownTopicOrPartition, "topic %q does not exist", topic)
	}
	req := kmsg.NewPtrAlterPartitionRequest()
	req.Version = 2
	req.BrokerID, req.BrokerEpoch = c.cfg.NodeID, c.lifecycle.epochOr(-1)
	rp := kmsg.NewAlterPartitionRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch, rp.NewISR = partition, leaderEpoch, partitionEpoch, newISR
	req.Topics = []kmsg.AlterPartitionRequestTopic{{TopicID: t.ID, Partitions: []kmsg.AlterPartitionRequestTopicPartition{rp}}}
	kresp, err := c.route(ctx, req)
	if err != nil {
		return none, err
	}
	resp := kresp.(*kmsg.AlterPartitionResponse)
	if err := kafkaErr(resp.ErrorCode, nil); err != nil {
		return none, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return none, kerrf(kerr.UnknownServerError, "malformed AlterPartition response")
	}
	sp := resp.Topics[0].Partitions[0]
	if err := kafkaErr(sp.ErrorCode, nil); err != nil {
		return none, err
	}
	img, err := c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags))
	if err != nil {
		return none, err
	}
	var replicas []int32
	if t := img.TopicsByID[t.ID]; t != nil && int(partition) < len(t.Partitions) {
		replicas = t.Partitions[partition].Replicas
	}
	return PartitionRegistration{Replicas: replicas, ISR: sp.ISR, Leader: sp.LeaderID, LeaderEpoch: sp.LeaderEpoch, PartitionEpoch: sp.PartitionEpoch}, nil
}

// AllocateProducerIDs hands out a block of producer ids no other call, on
// any node, ever gets.
func (c *Controller) AllocateProducerIDs(ctx context.Context) (first int64, count int32, err error) {
	req := kmsg.NewPtrAllocateProducerIDsRequest()
	req.BrokerID, req.BrokerEpoch = c.cfg.NodeID, c.lifecycle.epochOr(-1)
	kresp, err := c.route(ctx, req)
	if err != nil {
		return 0, 0, err
	}
	resp := kresp.(*kmsg.AllocateProducerIDsResponse)
	if err := kafkaErr(resp.ErrorCode, nil); err != nil {
		return 0, 0, err
	}
	if _, err := c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags)); err != nil {
		return 0, 0, err
	}
	return resp.ProducerIDStart, resp.ProducerIDLen, nil
}

// ElectLeaders elects leaders (Kafka's ElectLeaders, see
// electLeaderRecord): topics nil means every partition, whose results then
// leave out the ones that needed no election. Per-partition errors are in
// the results; the error is for the request as a whole.
func (c *Controller) ElectLeaders(ctx context.Context, typ ElectionType, topics []TopicPartitions) ([]PartitionResult, error) {
	req := kmsg.NewPtrElectLeadersRequest()
	req.Version = 2
	req.ElectionType = int8(typ)
	if topics != nil {
		req.Topics = []kmsg.ElectLeadersRequestTopic{}
		for _, tp := range topics {
			req.Topics = append(req.Topics, kmsg.ElectLeadersRequestTopic{Topic: tp.Topic, Partitions: tp.Partitions})
		}
	}
	kresp, err := c.route(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.ElectLeadersResponse)
	if err := kafkaErr(resp.ErrorCode, nil); err != nil {
		return nil, err
	}
	var out []PartitionResult
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			out = append(out, PartitionResult{Topic: st.Topic, Partition: sp.Partition, Err: kafkaErr(sp.ErrorCode, sp.ErrorMessage)})
		}
	}
	_, err = c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags))
	return out, err
}

// AlterPartitionReassignments starts, changes or (nil replicas) cancels
// partition reassignments (Kafka's AlterPartitionReassignments, see
// reassignmentRecord). It returns once the first step is applied here;
// the reassignment completes when the ISR holds the whole target.
func (c *Controller) AlterPartitionReassignments(ctx context.Context, allowRFChange bool, rs []Reassignment) ([]PartitionResult, error) {
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	req.Version = 1
	req.AllowReplicationFactorChange = allowRFChange
	for _, ra := range rs {
		i := slices.IndexFunc(req.Topics, func(t kmsg.AlterPartitionAssignmentsRequestTopic) bool { return t.Topic == ra.Topic })
		if i < 0 {
			req.Topics = append(req.Topics, kmsg.AlterPartitionAssignmentsRequestTopic{Topic: ra.Topic})
			i = len(req.Topics) - 1
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, kmsg.AlterPartitionAssignmentsRequestTopicPartition{Partition: ra.Partition, Replicas: ra.Replicas})
	}
	kresp, err := c.route(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.AlterPartitionAssignmentsResponse)
	if err := kafkaErr(resp.ErrorCode, resp.ErrorMessage); err != nil {
		return nil, err
	}
	var out []PartitionResult
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			out = append(out, PartitionResult{Topic: st.Topic, Partition: sp.Partition, Err: kafkaErr(sp.ErrorCode, sp.ErrorMessage)})
		}
	}
	_, err = c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags))
	return out, err
}

// ListPartitionReassignments lists the ongoing reassignments (all with
// topics nil) from this node's image: it has applied every change this
// node made or waited for, though it may trail the active controller by
// the entries in flight.
func (c *Controller) ListPartitionReassignments(topics []TopicPartitions) []OngoingReassignment {
	return ongoingReassignments(c.Image(), topics)
}
