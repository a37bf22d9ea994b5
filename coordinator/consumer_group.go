package coordinator

import "github.com/twmb/franz-go/pkg/kerr"

// ConsumerGroup is a KIP-848 consumer group. (Skeleton: filled in by the
// KIP-848 work.)
type ConsumerGroup struct {
	gc *GroupCoordinator
	id string
}

// consumerRecord is a consumer group's persisted form.
type consumerRecord struct{}

func loadConsumerGroup(gc *GroupCoordinator, id string, rec *consumerRecord) *ConsumerGroup {
	return &ConsumerGroup{gc: gc, id: id}
}

func (g *ConsumerGroup) Type() string         { return groupTypeConsumer }
func (g *ConsumerGroup) State() string        { return "Empty" }
func (g *ConsumerGroup) ProtocolType() string { return "consumer" }
func (g *ConsumerGroup) IsEmpty() bool        { return true }
func (g *ConsumerGroup) validateOffsetCommit(string, *string, int32, bool, int16) *kerr.Error {
	return nil
}
func (g *ConsumerGroup) validateOffsetFetch(string, int32) *kerr.Error { return nil }
func (g *ConsumerGroup) validateOffsetDelete() *kerr.Error             { return nil }
func (g *ConsumerGroup) isSubscribedToTopic(string) bool               { return false }
func (g *ConsumerGroup) record() storedGroup {
	return storedGroup{Type: groupTypeConsumer, Consumer: &consumerRecord{}}
}
func (g *ConsumerGroup) stop() {}
