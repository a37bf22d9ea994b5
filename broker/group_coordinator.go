package broker

import (
	"errors"
	"net"

	"github.com/kbroker/kbroker/controller"
	"github.com/kbroker/kbroker/coordinator"
	"github.com/kbroker/kbroker/storage"
)

// offsetsTopic is Kafka's internal topic of group state. kbroker keeps
// group state in meta.db, but clients expect the topic to exist once a
// group coordinator has been looked up (and to be internal: regex
// consumers skip it), so FindCoordinator creates it, empty, as Kafka does.
const offsetsTopic = "__consumer_offsets"

// ensureOffsetsTopic creates __consumer_offsets on first use.
func (s *Server) ensureOffsetsTopic() error {
	if _, ok := s.logs.Topic(offsetsTopic); ok {
		return nil
	}
	if s.cluster != nil {
		_, err := s.cluster.createTopic(controller.CreateTopicSpec{
			Name: offsetsTopic, NumPartitions: s.cfg.OffsetsTopicNumPartitions, ReplicationFactor: s.cfg.OffsetsTopicReplicationFactor,
		})
		return err
	}
	_, err := s.logs.CreateTopic(offsetsTopic, s.cfg.OffsetsTopicNumPartitions, nil)
	if errors.Is(err, storage.ErrTopicExists) {
		return nil
	}
	if err == nil {
		s.logger.Info("created internal topic", "topic", offsetsTopic, "partitions", s.cfg.OffsetsTopicNumPartitions)
	}
	return err
}

// topicMetadata shows the coordinator the topics of the log manager.
type topicMetadata struct{ logs *storage.LogManager }

func (m topicMetadata) Topic(name string) ([16]byte, int32, bool) {
	t, ok := m.logs.Topic(name)
	if !ok {
		return [16]byte{}, 0, false
	}
	return t.ID, int32(len(t.Partitions)), true
}

func (m topicMetadata) TopicByID(id [16]byte) (string, int32, bool) {
	t, ok := m.logs.TopicByID(storage.TopicID(id))
	if !ok {
		return "", 0, false
	}
	return t.Name, int32(len(t.Partitions)), true
}

func (m topicMetadata) TopicNames() []string {
	ts := m.logs.Topics()
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	return names
}

// requestContext is what the coordinator learns about the client: its id
// and its host as Kafka prints an InetAddress ("/127.0.0.1").
func (creq *clientReq) requestContext() coordinator.RequestContext {
	host := creq.conn.nc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return coordinator.RequestContext{ClientID: creq.ClientID, ClientHost: "/" + host}
}
