package broker

import (
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
	"github.com/kbroker/kbroker/storage"
)

// Metadata: v0-13
//
// Behavior:
// * Brokers are reported by the advertised listener of the listener the
//   client connected through, as Kafka does.
// * Unknown topics are auto-created (num.partitions) when both the request
//   (v4+ AllowAutoTopicCreation; always before v4) and
//   auto.create.topics.enable allow it; otherwise UNKNOWN_TOPIC_OR_PARTITION.
//   When they would add more than maxPartitionsPerRequest partitions in all,
//   none is created and each gets LEADER_NOT_AVAILABLE: Kafka's controller
//   refuses the one CreateTopics that AutoTopicCreationManager sends for
//   them, while the Metadata answer has already said "being created".
// * Topics requested by id (v10+) that do not exist get UNKNOWN_TOPIC_ID.
// * With an authorizer (KafkaApis.handleTopicMetadataRequest): all-topics
//   requests list only the topics the client may DESCRIBE; a named topic
//   it may not is TOPIC_AUTHORIZATION_FAILED, whether it exists or not; a
//   topic to auto-create needs CREATE on the cluster or on the topic, else
//   TOPIC_AUTHORIZATION_FAILED.
// * Authorized operations, when asked for (v8+), are the operations the
//   client may perform (AuthHelper.authorizedOperations): every one
//   without an authorizer.
//
// Version notes:
// * v1: null topics means all; ControllerID; IsInternal
// * v2: ClusterID
// * v4: AllowAutoTopicCreation
// * v7: LeaderEpoch
// * v9: flexible
// * v10: TopicID
// * v13: top-level ErrorCode (KIP-1102)

func (s *Server) handleMetadata(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)

	resp.Brokers, resp.ControllerID = s.metadataBrokers(creq.conn.listener)
	resp.ClusterID = &s.clusterID
	if req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = s.authorizedOperations(creq, acl.ResourceCluster, acl.ClusterName)
	}

	// v0 has no null: an empty list means every topic.
	allTopics := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if allTopics {
		for _, t := range s.logs.Topics() {
			if s.authorize(creq, acl.OpDescribe, acl.ResourceTopic, t.Name) {
				resp.Topics = append(resp.Topics, s.metadataTopic(creq, t, req.IncludeTopicAuthorizedOperations))
			}
		}
		return resp, nil
	}

	allowAuto := req.AllowAutoTopicCreation || req.Version < 4
	refuseAuto := allowAuto && s.tooManyToAutoCreate(req.Topics)
	for _, rt := range req.Topics {
		var (
			t  *storage.Topic
			ok bool
		)
		switch {
		case rt.Topic == nil || *rt.Topic == "":
			if rt.TopicID == ([16]byte{}) {
				resp.Topics = append(resp.Topics, metadataTopicError(rt, kerr.InvalidTopicException))
				continue
			}
			if t, ok = s.logs.TopicByID(storage.TopicID(rt.TopicID)); !ok {
				resp.Topics = append(resp.Topics, metadataTopicError(rt, kerr.UnknownTopicID))
				continue
			}
			if !s.authorize(creq, acl.OpDescribe, acl.ResourceTopic, t.Name) {
				resp.Topics = append(resp.Topics, metadataTopicError(rt, kerr.TopicAuthorizationFailed))
				continue
			}
		case !s.authorize(creq, acl.OpDescribe, acl.ResourceTopic, *rt.Topic):
			resp.Topics = append(resp.Topics, metadataTopicError(rt, kerr.TopicAuthorizationFailed))
			continue
		default:
			if t, ok = s.logs.Topic(*rt.Topic); !ok {
				if !allowAuto {
					resp.Topics = append(resp.Topics, metadataTopicError(rt, kerr.UnknownTopicOrPartition))
					continue
				}
				if !s.mayCreateTopic(creq, *rt.Topic) {
					resp.Topics = append(resp.Topics, metadataTopicError(rt, kerr.TopicAuthorizationFailed))
					continue
				}
				if refuseAuto {
					resp.Topics = append(resp.Topics, metadataTopicError(rt, kerr.LeaderNotAvailable))
					continue
				}
				var err error
				if t, err = s.autoCreateTopic(*rt.Topic); err != nil {
					resp.Topics = append(resp.Topics, metadataTopicError(rt, protocol.KafkaError(err)))
					continue
				}
			}
		}
		resp.Topics = append(resp.Topics, s.metadataTopic(creq, t, req.IncludeTopicAuthorizedOperations))
	}
	return resp, nil
}

// tooManyToAutoCreate reports whether auto-creating the unknown topics of a
// Metadata request would add more than maxPartitionsPerRequest partitions.
func (s *Server) tooManyToAutoCreate(topics []kmsg.MetadataRequestTopic) bool {
	if !s.cfg.AutoCreateTopicsEnable {
		return false
	}
	var unknown int64
	for _, rt := range topics {
		if rt.Topic != nil && *rt.Topic != "" {
			if _, ok := s.logs.Topic(*rt.Topic); !ok {
				unknown++
			}
		}
	}
	if unknown*int64(s.cfg.NumPartitions) <= maxPartitionsPerRequest {
		return false
	}
	s.logger.Warn("not auto-creating topics: they would add too many partitions in one request",
		"topics", unknown, "partitions_each", s.cfg.NumPartitions, "max", maxPartitionsPerRequest)
	return true
}

func (s *Server) metadataTopic(creq *clientReq, t *storage.Topic, authorizedOps bool) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(t.Name)
	mt.TopicID = t.ID
	mt.IsInternal = isInternalTopic(t.Name)
	if authorizedOps {
		mt.AuthorizedOperations = s.authorizedOperations(creq, acl.ResourceTopic, t.Name)
	}
	for p := range t.Partitions {
		st := s.partitionState(t, int32(p))
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = int32(p)
		mp.Leader = st.Leader
		mp.LeaderEpoch = st.LeaderEpoch
		mp.Replicas = st.Replicas
		mp.ISR = st.ISR
		mp.OfflineReplicas = s.offlineReplicas(st.Replicas)
		if st.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// metadataBrokers lists the live brokers by their endpoint on listener l
// and names the controller. On one node that is this broker; in a cluster
// the unfenced brokers of the image, and the active controller, which
// serves the admin requests clients send it as every broker does. The
// controller named is always one of the brokers listed, as Kafka names a
// live broker (KRaftMetadataCache.getRandomAliveBrokerId): while the active
// controller is fenced or not yet registered, this node, or else the first
// broker listed. Clients look the id up in the list (sarama finds "no
// controller" otherwise).
func (s *Server) metadataBrokers(l *boundListener) ([]kmsg.MetadataResponseBroker, int32) {
	if s.cluster == nil {
		adv := s.advertisedFor(l)
		return []kmsg.MetadataResponseBroker{{NodeID: s.cfg.NodeID, Host: adv.Host, Port: int32(adv.Port)}}, s.cfg.NodeID
	}
	img := s.cluster.ctl.Image()
	var brokers []kmsg.MetadataResponseBroker
	for _, id := range slices.Sorted(maps.Keys(img.Brokers)) {
		b := img.Brokers[id]
		if b.Fenced {
			continue
		}
		ep, ok := s.cluster.endpoint(id, l.Name)
		if !ok {
			continue
		}
		mb := kmsg.MetadataResponseBroker{NodeID: id, Host: ep.Host, Port: ep.Port}
		if b.Rack != "" {
			mb.Rack = kmsg.StringPtr(b.Rack)
		}
		brokers = append(brokers, mb)
	}
	listed := func(id int32) bool {
		return slices.ContainsFunc(brokers, func(b kmsg.MetadataResponseBroker) bool { return b.NodeID == id })
	}
	controllerID := s.cluster.ctl.ActiveID()
	switch {
	case listed(controllerID):
	case listed(s.cfg.NodeID) || len(brokers) == 0:
		controllerID = s.cfg.NodeID
	default:
		controllerID = brokers[0].NodeID
	}
	return brokers, controllerID
}

// offlineReplicas lists the replicas whose brokers are fenced.
func (s *Server) offlineReplicas(replicas []int32) []int32 {
	offline := []int32{}
	if s.cluster == nil {
		return offline
	}
	img := s.cluster.ctl.Image()
	for _, r := range replicas {
		if b, ok := img.Brokers[r]; !ok || b.Fenced {
			offline = append(offline, r)
		}
	}
	return offline
}

func metadataTopicError(rt kmsg.MetadataRequestTopic, err *kerr.Error) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = rt.Topic
	mt.TopicID = rt.TopicID
	mt.ErrorCode = err.Code
	return mt
}

// advertisedFor returns the advertised listener with the same name as the
// listener a client connected through (so clients of an internal and an
// external listener each learn an address they can reach); port 0 (tests
// binding :0) becomes the port actually bound and an empty host this
// machine's name. A listener left out of advertised.listeners advertises
// itself, its wildcard address as this machine's name.
func (s *Server) advertisedFor(l *boundListener) Listener {
	a := l.Listener
	if i := slices.IndexFunc(s.cfg.AdvertisedListeners, func(a Listener) bool { return a.Name == l.Name }); i >= 0 {
		a = s.cfg.AdvertisedListeners[i]
	} else if a.Host == "0.0.0.0" || a.Host == "::" {
		a.Host = ""
	}
	if a.Port == 0 {
		a.Port = l.Port
	}
	if a.Host == "" {
		a.Host = s.hostname
	}
	return a
}
