package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
	"github.com/kbroker/kbroker/storage"
)

// DeleteTopics: v1-6
//
// Behavior (ControllerApis.deleteTopics and ReplicationControlManager, which
// a KRaft broker forwards to):
// * delete.topic.enable=false fails every topic: INVALID_REQUEST before v3,
//   TOPIC_DELETION_DISABLED from v3, with no message.
// * Topics are named (TopicNames before v6) or, from v6, given by name or by
//   id. Both or neither set, a name or id listed twice, or a name resolving
//   to an id also listed: INVALID_REQUEST with Kafka's message, and nothing
//   is deleted for those entries.
// * An unknown name gets UNKNOWN_TOPIC_OR_PARTITION, an unknown id
//   UNKNOWN_TOPIC_ID, each with the error's default message as Kafka sends.
// * Responses follow request order; Kafka shuffles them so absent and
//   unauthorized topics cannot be told apart by position, which matters
//   only with ACLs.
// * Deletion is immediate and synchronous (log directories included); the
//   timeout is not needed.
//
// Version notes:
// * v1: ThrottleMillis
// * v3: TOPIC_DELETION_DISABLED instead of INVALID_REQUEST
// * v4: flexible
// * v5: ErrorMessage
// * v6: Topics with TopicID; TopicID in the response
//
// With an authorizer: DELETE on the topic, else
// TOPIC_AUTHORIZATION_FAILED; a topic id the client may not DESCRIBE is
// UNKNOWN_TOPIC_ID (ControllerApis.deleteTopics).

func (s *Server) handleDeleteTopics(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)

	entries := req.Topics
	if req.Version < 6 {
		entries = make([]kmsg.DeleteTopicsRequestTopic, 0, len(req.TopicNames))
		for _, name := range req.TopicNames {
			rt := kmsg.NewDeleteTopicsRequestTopic()
			rt.Topic = kmsg.StringPtr(name)
			entries = append(entries, rt)
		}
	}

	respond := func(name *string, id [16]byte, err *kerr.Error, msg *string) {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = name, id
		if err != nil {
			st.ErrorCode, st.ErrorMessage = err.Code, msg
		}
		resp.Topics = append(resp.Topics, st)
	}

	if !s.cfg.DeleteTopicEnable {
		err := kerr.TopicDeletionDisabled
		if req.Version < 3 {
			err = kerr.InvalidRequest
		}
		for _, e := range entries {
			respond(e.Topic, e.TopicID, err, nil)
		}
		return resp, nil
	}

	// Count names and ids first: a duplicate fails every copy of itself,
	// answered once, as ControllerApis does.
	names := make(map[string]int)
	ids := make(map[[16]byte]int)
	for _, e := range entries {
		switch {
		case e.Topic != nil && e.TopicID == ([16]byte{}):
			names[*e.Topic]++
		case e.Topic == nil && e.TopicID != ([16]byte{}):
			ids[e.TopicID]++
		}
	}

	// Topics given by id are resolved before names, so that a name mapping
	// to an id also given can void both.
	byID := make(map[[16]byte]*storage.Topic)
	for id, n := range ids {
		if n == 1 {
			if t, ok := s.logs.TopicByID(storage.TopicID(id)); ok {
				byID[id] = t
			}
		}
	}
	byName := make(map[string]*storage.Topic)
	voided := make(map[[16]byte]bool)
	for name, n := range names {
		if n != 1 {
			continue
		}
		if t, ok := s.logs.Topic(name); ok {
			byName[name] = t
			if ids[t.ID] > 0 {
				voided[t.ID] = true
			}
		}
	}

	answered := make(map[any]bool) // duplicates are answered once
	for _, e := range entries {
		switch {
		case e.Topic == nil && e.TopicID == ([16]byte{}):
			respond(nil, e.TopicID, kerr.InvalidRequest, kmsg.StringPtr("Neither topic name nor id were specified."))

		case e.Topic != nil && e.TopicID != ([16]byte{}):
			respond(e.Topic, e.TopicID, kerr.InvalidRequest, kmsg.StringPtr("You may not specify both topic name and topic id."))

		case e.Topic != nil: // by name
			name := *e.Topic
			switch t := byName[name]; {
			case names[name] > 1:
				if !answered[name] {
					answered[name] = true
					respond(e.Topic, [16]byte{}, kerr.InvalidRequest, kmsg.StringPtr("Duplicate topic name."))
				}
			case !s.authorize(creq, acl.OpDelete, acl.ResourceTopic, name):
				respond(e.Topic, [16]byte{}, kerr.TopicAuthorizationFailed, nil)
			case t == nil:
				respond(e.Topic, [16]byte{}, kerr.UnknownTopicOrPartition, kmsg.StringPtr(kerr.UnknownTopicOrPartition.Description))
			case voided[t.ID]:
				respond(e.Topic, t.ID, kerr.InvalidRequest, kmsg.StringPtr("The provided topic name maps to an ID that was already supplied."))
			default:
				s.deleteTopic(t, respond)
			}

		default: // by id
			switch t := byID[e.TopicID]; {
			case ids[e.TopicID] > 1:
				if !answered[e.TopicID] {
					answered[e.TopicID] = true
					respond(nil, e.TopicID, kerr.InvalidRequest, kmsg.StringPtr("Duplicate topic id."))
				}
			case t == nil || !s.authorize(creq, acl.OpDescribe, acl.ResourceTopic, t.Name):
				// A topic the client may not describe is not disclosed.
				respond(nil, e.TopicID, kerr.UnknownTopicID, kmsg.StringPtr(kerr.UnknownTopicID.Description))
			case !s.authorize(creq, acl.OpDelete, acl.ResourceTopic, t.Name):
				respond(nil, e.TopicID, kerr.TopicAuthorizationFailed, nil)
			case voided[e.TopicID]:
				// Answered under the name that maps to it.
			default:
				s.deleteTopic(t, respond)
			}
		}
	}
	return resp, nil
}

func (s *Server) deleteTopic(t *storage.Topic, respond func(*string, [16]byte, *kerr.Error, *string)) {
	name := kmsg.StringPtr(t.Name)
	// storage deletes by name: make sure the name still means the topic
	// resolved above, not one recreated since.
	var err error
	if cur, ok := s.logs.Topic(t.Name); !ok || cur.ID != t.ID {
		err = storage.ErrUnknownTopic
	} else if s.cluster != nil {
		err = s.cluster.deleteTopic(t.Name)
	} else {
		err = s.logs.DeleteTopic(t.Name)
	}
	if err != nil {
		// Lost a race with another deletion: Kafka answers the id it had
		// resolved as unknown (ReplicationControlManager.deleteTopic).
		ke := protocol.KafkaError(err)
		if ke == kerr.UnknownTopicOrPartition {
			ke = kerr.UnknownTopicID
		}
		respond(name, t.ID, ke, nil)
		return
	}
	s.metrics.forgetTopic(t.Name)
	s.logger.Info("deleted topic", "topic", t.Name)
	respond(name, t.ID, nil, nil)
}
