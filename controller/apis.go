package controller

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol"
)

// The controller APIs served on the controller listener (Kafka's
// ControllerApis). Only flexible versions are served: every response
// carries the metadata offset of its change in the tagged field
// offsetTag, so that the node that asked can wait until its own image has
// applied the change before answering its client. Kafka's brokers do
// without (they read the change from their next metadata fetch); kbroker's
// operations return only once the caller can see their effect.
var controllerAPIs = map[int16]protocol.VersionRange{
	protocol.ApiVersionsKey:      {Min: 0, Max: 4},
	protocol.CreateTopicsKey:     {Min: 5, Max: 7},
	protocol.DeleteTopicsKey:     {Min: 4, Max: 6},
	protocol.AlterConfigsKey:     {Min: 2, Max: 2},
	protocol.CreatePartitionsKey: {Min: 2, Max: 3},
	electLeadersKey:              {Min: 2, Max: 2},
	alterPartitionAssignmentsKey: {Min: 0, Max: 1},
	alterPartitionKey:            {Min: 2, Max: 3},
	brokerRegistrationKey:        {Min: 0, Max: 4},
	brokerHeartbeatKey:           {Min: 0, Max: 2},
	allocateProducerIDsKey:       {Min: 0, Max: 0},
	createACLsKey:                {Min: 2, Max: 3},
	deleteACLsKey:                {Min: 2, Max: 3},
	alterUserScramCredentialsKey: {Min: 0, Max: 0},
}

const (
	createACLsKey                = 30
	deleteACLsKey                = 31
	electLeadersKey              = 43
	alterPartitionAssignmentsKey = 45
	alterPartitionKey            = 56
	brokerRegistrationKey        = 62
	brokerHeartbeatKey           = 63
	allocateProducerIDsKey       = 67
	alterUserScramCredentialsKey = 51
)

// offsetTag is the kbroker-private tagged field (in the response's
// top-level tags) holding the metadata offset, as a uvarint, that the
// requester must apply to see the change. Kafka's own tags are small
// numbers; this one is far from them.
const offsetTag = 0x6b62

func setOffsetTag(t *kmsg.Tags, offset uint64) { t.Set(offsetTag, binary.AppendUvarint(nil, offset)) }

func offsetFromTags(t *kmsg.Tags) uint64 {
	var off uint64
	t.Each(func(key uint32, val []byte) {
		if key == offsetTag {
			off, _ = binary.Uvarint(val)
		}
	})
	return off
}

// serveKafka serves one Kafka-protocol connection of the controller
// listener, a request at a time. A frame that cannot be parsed closes the
// connection.
func (c *Controller) serveKafka(nc net.Conn, r *bufio.Reader) {
	var buf, out []byte
	for {
		frame, err := protocol.ReadFrame(r, maxControllerBody, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.logger.Debug("closing controller connection", "remote", nc.RemoteAddr(), "err", err)
			}
			return
		}
		buf = frame[:0]
		corr, req, err := parseControllerRequest(frame)
		if err != nil {
			c.logger.Debug("closing controller connection: bad request", "remote", nc.RemoteAddr(), "err", err)
			return
		}
		resp := c.handle(req)
		out = protocol.AppendResponseHeader(append(out[:0], 0, 0, 0, 0), corr, resp)
		out = resp.AppendTo(out)
		binary.BigEndian.PutUint32(out, uint32(len(out)-4))
		if _, err := nc.Write(out); err != nil {
			return
		}
	}
}

// parseControllerRequest parses a request frame for a controller API
// (protocol.ParseRequest's header rules, with the controller's table).
// kmsg decodes the body; it copies what it keeps (no unsafe decoding), so
// the frame may be reused.
func parseControllerRequest(frame []byte) (int32, kmsg.Request, error) {
	rd := kbin.Reader{Src: frame}
	key, version, corr := rd.Int16(), rd.Int16(), rd.Int32()
	rd.NullableString() // client id
	if err := rd.Complete(); err != nil {
		return corr, nil, fmt.Errorf("%w: header", protocol.ErrMalformedRequest)
	}
	vr, ok := controllerAPIs[key]
	if !ok || version < vr.Min || version > vr.Max {
		if key == protocol.ApiVersionsKey {
			// Answered at v0 with UNSUPPORTED_VERSION, as Kafka does.
			return corr, &kmsg.ApiVersionsRequest{Version: -1}, nil
		}
		return corr, nil, fmt.Errorf("%w: key %d v%d", protocol.ErrUnsupportedVersion, key, version)
	}
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	if req.IsFlexible() {
		protocol.SkipTags(&rd)
		if err := rd.Complete(); err != nil {
			return corr, nil, fmt.Errorf("%w: header tags", protocol.ErrMalformedRequest)
		}
	}
	if err := req.ReadFrom(rd.Src); err != nil {
		return corr, nil, fmt.Errorf("%w: %v", protocol.ErrMalformedRequest, err)
	}
	return corr, req, nil
}

// handle answers one controller request, locally: it is what the server
// runs for a remote node and what this node's operations run when it is
// the active controller. Every failure is in the response.
func (c *Controller) handle(req kmsg.Request) kmsg.Response {
	switch req := req.(type) {
	case *kmsg.ApiVersionsRequest:
		return c.handleApiVersions(req)
	case *kmsg.CreateTopicsRequest:
		return c.handleCreateTopics(req)
	case *kmsg.DeleteTopicsRequest:
		return c.handleDeleteTopics(req)
	case *kmsg.CreatePartitionsRequest:
		return c.handleCreatePartitions(req)
	case *kmsg.AlterConfigsRequest:
		return c.handleAlterConfigs(req)
	case *kmsg.AlterPartitionRequest:
		return c.handleAlterPartition(req)
	case *kmsg.ElectLeadersRequest:
		return c.handleElectLeaders(req)
	case *kmsg.AlterPartitionAssignmentsRequest:
		return c.handleAlterPartitionAssignments(req)
	case *kmsg.BrokerRegistrationRequest:
		return c.handleBrokerRegistration(req)
	case *kmsg.BrokerHeartbeatRequest:
		return c.handleBrokerHeartbeat(req)
	case *kmsg.AllocateProducerIDsRequest:
		return c.handleAllocateProducerIDs(req)
	case *kmsg.CreateACLsRequest:
		return c.handleCreateACLs(req)
	case *kmsg.DeleteACLsRequest:
		return c.handleDeleteACLs(req)
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		return c.handleAlterUserScramCredentials(req)
	}
	panic(fmt.Sprintf("controller: no handler for %T", req)) // the table and this switch disagree
}

// codeMsg splits an error into a Kafka code and message.
func codeMsg(err error) (int16, *string) {
	if err == nil {
		return 0, nil
	}
	return protocol.ErrorCode(err), kmsg.StringPtr(err.Error())
}

// ApiVersions: v0-4, the controller table. An unsupported version is
// answered at v0 with UNSUPPORTED_VERSION.
func (c *Controller) handleApiVersions(req *kmsg.ApiVersionsRequest) kmsg.Response {
	v := req.Version
	resp := &kmsg.ApiVersionsResponse{Version: max(v, 0)}
	if v < 0 {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	}
	for k := int16(0); k <= kmsg.MaxKey; k++ {
		if r, ok := controllerAPIs[k]; ok {
			resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: r.Min, MaxVersion: r.Max})
		}
	}
	return resp
}

// CreateTopics: v5-7. Each topic is planned and committed on its own.
func (c *Controller) handleCreateTopics(req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	var maxOff uint64
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		spec := CreateTopicSpec{Name: rt.Topic, NumPartitions: rt.NumPartitions, ReplicationFactor: rt.ReplicationFactor, ValidateOnly: req.ValidateOnly}
		if len(rt.ReplicaAssignment) > 0 {
			spec.Assignment = make([][]int32, len(rt.ReplicaAssignment))
			for _, a := range rt.ReplicaAssignment {
				if a.Partition < 0 || int(a.Partition) >= len(spec.Assignment) {
					spec.Assignment = nil
					break
				}
				spec.Assignment[a.Partition] = a.Replicas
			}
			if spec.Assignment == nil {
				st.ErrorCode, st.ErrorMessage = kerr.InvalidReplicaAssignment.Code, kmsg.StringPtr("partitions must be numbered 0..n-1")
				resp.Topics = append(resp.Topics, st)
				continue
			}
		}
		for _, cfg := range rt.Configs {
			if spec.Configs == nil {
				spec.Configs = map[string]string{}
			}
			if cfg.Value != nil {
				spec.Configs[cfg.Name] = *cfg.Value
			}
		}
		var planned *TopicImage
		off, err := c.write(func(img *Image) ([]record, error) {
			t, recs, err := createTopicRecords(img, spec, newTopicID(), rand.IntN(1<<16), c.cfg.DefaultNumPartitions, c.cfg.DefaultReplicationFactor, c.cfg.ValidateTopicConfigs)
			planned = t
			if spec.ValidateOnly {
				return nil, err
			}
			return recs, err
		})
		st.ErrorCode, st.ErrorMessage = codeMsg(err)
		if err == nil {
			if !spec.ValidateOnly {
				st.TopicID = planned.ID
			}
			st.NumPartitions = int32(len(planned.Partitions))
			st.ReplicationFactor = int16(len(planned.Partitions[0].Replicas))
			maxOff = max(maxOff, off)
		} else {
			st.NumPartitions, st.ReplicationFactor = -1, -1
		}
		resp.Topics = append(resp.Topics, st)
	}
	setOffsetTag(&resp.UnknownTags, maxOff)
	return resp
}

// DeleteTopics: v4-6, by name or (v6) by id.
func (c *Controller) handleDeleteTopics(req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	topics := req.Topics
	for _, name := range req.TopicNames {
		topics = append(topics, kmsg.DeleteTopicsRequestTopic{Topic: kmsg.StringPtr(name)})
	}
	var maxOff uint64
	for _, rt := range topics {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		off, err := c.write(func(img *Image) ([]record, error) {
			var t *TopicImage
			if rt.Topic != nil {
				t = img.Topics[*rt.Topic]
			} else {
				t = img.TopicsByID[rt.TopicID]
			}
			if t == nil {
				if rt.Topic == nil {
					return nil, kerrf(kerr.UnknownTopicID, "unknown topic id %x", rt.TopicID)
				}
				return nil, kerrf(kerr.UnknownTopicOrPartition, "topic %q does not exist", *rt.Topic)
			}
			st.Topic, st.TopicID = kmsg.StringPtr(t.Name), t.ID
			return []record{{Type: recDeleteTopic, TopicID: t.ID}}, nil
		})
		st.ErrorCode, st.ErrorMessage = codeMsg(err)
		if err == nil {
			maxOff = max(maxOff, off)
		}
		resp.Topics = append(resp.Topics, st)
	}
	setOffsetTag(&resp.UnknownTags, maxOff)
	return resp
}

// CreatePartitions: v2-3.
func (c *Controller) handleCreatePartitions(req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	var maxOff uint64
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var assignment [][]int32
		for _, a := range rt.Assignment {
			assignment = append(assignment, a.Replicas)
		}
		off, err := c.write(func(img *Image) ([]record, error) {
			recs, err := createPartitionsRecords(img, rt.Topic, rt.Count, assignment, rand.IntN(1<<16))
			if req.ValidateOnly {
				return nil, err
			}
			return recs, err
		})
		st.ErrorCode, st.ErrorMessage = codeMsg(err)
		if err == nil {
			maxOff = max(maxOff, off)
		}
		resp.Topics = append(resp.Topics, st)
	}
	setOffsetTag(&resp.UnknownTags, maxOff)
	return resp
}

// AlterConfigs: v2, topics only. Kafka's AlterConfigs replaces a
// resource's whole set of overrides, which is what SetTopicConfigs is.
func (c *Controller) handleAlterConfigs(req *kmsg.AlterConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	var maxOff uint64
	for _, rr := range req.Resources {
		st := kmsg.NewAlterConfigsResponseResource()
		st.ResourceType, st.ResourceName = rr.ResourceType, rr.ResourceName
		configs := map[string]string{}
		for _, cfg := range rr.Configs {
			if cfg.Value != nil {
				configs[cfg.Name] = *cfg.Value
			}
		}
		off, err := c.write(func(img *Image) ([]record, error) {
			if rr.ResourceType != kmsg.ConfigResourceTypeTopic {
				return nil, kerrf(kerr.InvalidRequest, "the controller alters topic configs only")
			}
			t, ok := img.Topics[rr.ResourceName]
			if !ok {
				return nil, kerrf(kerr.UnknownTopicOrPartition, "topic %q does not exist", rr.ResourceName)
			}
			if v := c.cfg.ValidateTopicConfigs; v != nil {
				if err := v(configs); err != nil {
					return nil, kerrf(kerr.InvalidConfig, "%v", err)
				}
			}
			if req.ValidateOnly {
				return nil, nil
			}
			return []record{{Type: recSetTopicConfigs, TopicID: t.ID, Configs: configs}}, nil
		})
		st.ErrorCode, st.ErrorMessage = codeMsg(err)
		if err == nil {
			maxOff = max(maxOff, off)
		}
		resp.Resources = append(resp.Resources, st)
	}
	setOffsetTag(&resp.UnknownTags, maxOff)
	return resp
}

// AlterPartition: v2-3 (topic ids). The sender must be registered with the
// given broker epoch (-1 skips the check), and each partition is validated
// by alterPartitionRecords.
func (c *Controller) handleAlterPartition(req *kmsg.AlterPartitionRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterPartitionResponse)
	if !c.active.Load() {
		resp.ErrorCode = kerr.NotController.Code
		return resp
	}
	if b, ok := c.Image().Brokers[req.BrokerID]; !ok || (req.BrokerEpoch != -1 && b.Epoch != req.BrokerEpoch) {
		resp.ErrorCode = kerr.StaleBrokerEpoch.Code
		return resp
	}
	var maxOff uint64
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionResponseTopic()
		st.TopidID = rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionResponseTopicPartition()
			sp.Partition = rp.Partition
			isr := rp.NewISR
			if req.Version >= 3 {
				isr = nil
				for _, e := range rp.NewEpochISR {
					isr = append(isr, e.BrokerID)
				}
			}
			var got PartitionRegistration
			off, err := c.write(func(img *Image) ([]record, error) {
				p, recs, err := alterPartitionRecords(img, req.BrokerID, rt.TopicID, rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch, isr)
				got = p
				return recs, err
			})
			if err != nil && errors.Is(err, kerr.NotController) {
				resp.ErrorCode = kerr.NotController.Code
				return resp
			}
			sp.ErrorCode, _ = codeMsg(err)
			if err == nil && got.Leader != req.BrokerID {
				// The ISR completed a reassignment that moved the leader
				// away: the change is written, and the old leader learns
				// it must refresh (Kafka's NEW_LEADER_ELECTED, and
				// FENCED_LEADER_EPOCH before v2).
				maxOff = max(maxOff, off)
				sp.ErrorCode = kerr.NewLeaderElected.Code
				if req.Version < 2 {
					sp.ErrorCode = kerr.FencedLeaderEpoch.Code
				}
			} else if err == nil {
				sp.LeaderID, sp.LeaderEpoch, sp.ISR, sp.PartitionEpoch = got.Leader, got.LeaderEpoch, got.ISR, got.PartitionEpoch
				maxOff = max(maxOff, off)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	setOffsetTag(&resp.UnknownTags, maxOff)
	return resp
}

// BrokerRegistration: v0-4. The epoch is the registration's offset.
func (c *Controller) handleBrokerRegistration(req *kmsg.BrokerRegistrationRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.BrokerRegistrationResponse)
	reg := BrokerRegistration{ID: req.BrokerID, IncarnationID: req.IncarnationID}
	if req.Rack != nil {
		reg.Rack = *req.Rack
	}
	for _, l := range req.Listeners {
		reg.Endpoints = append(reg.Endpoints, Endpoint{Listener: l.Name, Host: l.Host, Port: int32(l.Port), SecurityProtocol: l.SecurityProtocol})
	}
	epoch, err := c.registerBroker(reg, req.ClusterID)
	resp.ErrorCode, _ = codeMsg(err)
	resp.BrokerEpoch = epoch
	if err == nil {
		setOffsetTag(&resp.UnknownTags, uint64(epoch))
	}
	return resp
}

// BrokerHeartbeat: v0-2.
func (c *Controller) handleBrokerHeartbeat(req *kmsg.BrokerHeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.BrokerHeartbeatResponse)
	res, err := c.brokerHeartbeat(req.BrokerID, req.BrokerEpoch, req.CurrentMetadataOffset, req.WantFence, req.WantShutdown)
	resp.ErrorCode, _ = codeMsg(err)
	resp.IsCaughtUp, resp.IsFenced, resp.ShouldShutdown = res.caughtUp, res.fenced, res.shouldShutdown
	if err == nil {
		setOffsetTag(&resp.UnknownTags, res.offset)
	}
	return resp
}

// AllocateProducerIds: v0. Blocks of 1000 ids, each handed out once
// cluster-wide. A broker epoch of -1 skips the registration check (a node
// whose broker has not registered yet).
func (c *Controller) handleAllocateProducerIDs(req *kmsg.AllocateProducerIDsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AllocateProducerIDsResponse)
	var first int64
	off, err := c.write(func(img *Image) ([]record, error) {
		if req.BrokerEpoch != -1 {
			if b, ok := img.Brokers[req.BrokerID]; !ok || b.Epoch != req.BrokerEpoch {
				return nil, kerrf(kerr.StaleBrokerEpoch, "broker %d epoch %d", req.BrokerID, req.BrokerEpoch)
			}
		}
		first = img.NextProducerID
		return []record{{Type: recProducerIDs, NextProducerID: first + producerIDBlock}}, nil
	})
	resp.ErrorCode, _ = codeMsg(err)
	if err == nil {
		resp.ProducerIDStart, resp.ProducerIDLen = first, producerIDBlock
		setOffsetTag(&resp.UnknownTags, off)
	}
	return resp
}

// ElectLeaders: v2. All elections of a request are one entry; a write
// failure is the top-level error (NOT_CONTROLLER makes the sender retry).
func (c *Controller) handleElectLeaders(req *kmsg.ElectLeadersRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	var topics []TopicPartitions
	if req.Topics != nil {
		topics = []TopicPartitions{}
		for _, rt := range req.Topics {
			topics = append(topics, TopicPartitions{Topic: rt.Topic, Partitions: rt.Partitions})
		}
	}
	var results []PartitionResult
	off, err := c.write(func(img *Image) ([]record, error) {
		recs, res, err := electLeadersRecords(img, ElectionType(req.ElectionType), topics)
		results = res
		return recs, err
	})
	if err != nil {
		resp.ErrorCode, _ = codeMsg(err)
		return resp
	}
	for _, r := range results {
		i := slices.IndexFunc(resp.Topics, func(t kmsg.ElectLeadersResponseTopic) bool { return t.Topic == r.Topic })
		if i < 0 {
			resp.Topics = append(resp.Topics, kmsg.ElectLeadersResponseTopic{Topic: r.Topic})
			i = len(resp.Topics) - 1
		}
		sp := kmsg.NewElectLeadersResponseTopicPartition()
		sp.Partition = r.Partition
		sp.ErrorCode, sp.ErrorMessage = codeMsg(r.Err)
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, sp)
	}
	setOffsetTag(&resp.UnknownTags, off)
	return resp
}

// AlterPartitionAssignments: v0-1 (v1: AllowReplicationFactorChange). All
// partitions of a request are one entry, as ElectLeaders.
func (c *Controller) handleAlterPartitionAssignments(req *kmsg.AlterPartitionAssignmentsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	var rs []Reassignment
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			rs = append(rs, Reassignment{Topic: rt.Topic, Partition: rp.Partition, Replicas: rp.Replicas})
		}
	}
	allowRF := req.Version < 1 || req.AllowReplicationFactorChange
	var results []PartitionResult
	off, err := c.write(func(img *Image) ([]record, error) {
		recs, res, err := reassignmentRecords(img, rs, allowRF, c.unclean())
		results = res
		return recs, err
	})
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = codeMsg(err)
		return resp
	}
	for _, r := range results {
		i := slices.IndexFunc(resp.Topics, func(t kmsg.AlterPartitionAssignmentsResponseTopic) bool { return t.Topic == r.Topic })
		if i < 0 {
			resp.Topics = append(resp.Topics, kmsg.AlterPartitionAssignmentsResponseTopic{Topic: r.Topic})
			i = len(resp.Topics) - 1
		}
		sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
		sp.Partition = r.Partition
		sp.ErrorCode, sp.ErrorMessage = codeMsg(r.Err)
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, sp)
	}
	setOffsetTag(&resp.UnknownTags, off)
	return resp
}
