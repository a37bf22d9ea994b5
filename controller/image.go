package controller

import (
	"maps"
	"slices"
)

// Endpoint is one listener a broker serves clients on (Kafka's
// BrokerRegistrationRequest.Listener / RegisterBrokerRecord.BrokerEndpoint).
type Endpoint struct {
	Listener         string `json:"listener"`
	Host             string `json:"host"`
	Port             int32  `json:"port"`
	SecurityProtocol int16  `json:"securityProtocol"`
}

// BrokerRegistration is a broker as the metadata log knows it (Kafka's
// BrokerRegistration).
type BrokerRegistration struct {
	ID int32 `json:"id"`
	// Epoch is the metadata offset of the registration record, as in Kafka:
	// it grows with every registration and names this incarnation's
	// session in heartbeats.
	Epoch         int64      `json:"epoch"`
	IncarnationID [16]byte   `json:"incarnationId"`
	Endpoints     []Endpoint `json:"endpoints"`
	Rack          string     `json:"rack,omitempty"`
	// Fenced brokers lead nothing and may not join an ISR; a new
	// registration starts fenced until it has caught up with the log.
	Fenced bool `json:"fenced"`
	// InControlledShutdown brokers have asked to shut down: they lose
	// their leaderships and ISR places like fenced brokers do.
	InControlledShutdown bool `json:"inControlledShutdown"`
}

// eligible reports whether the broker may lead or join an ISR (Kafka's
// ClusterControlManager.isActive plus not shutting down).
func (b BrokerRegistration) eligible() bool { return !b.Fenced && !b.InControlledShutdown }

// PartitionRegistration is one partition's replica set and leadership
// (Kafka's PartitionRegistration).
type PartitionRegistration struct {
	Replicas []int32 `json:"replicas"`
	ISR      []int32 `json:"isr"`
	// Leader is -1 when no replica may lead (the partition is offline).
	Leader int32 `json:"leader"`
	// LeaderEpoch grows with every leader change.
	LeaderEpoch int32 `json:"leaderEpoch"`
	// PartitionEpoch grows with every change of the registration (leader,
	// ISR or replicas); AlterPartition must name the current one.
	PartitionEpoch int32 `json:"partitionEpoch"`
	// AddingReplicas and RemovingReplicas describe an ongoing reassignment
	// (Kafka's PartitionRegistration.addingReplicas/removingReplicas):
	// Replicas is then the target followed by the current replicas not in
	// it; Adding are the target's replicas that were not replicas before,
	// Removing the replicas not in the target. Both empty: none ongoing.
	AddingReplicas   []int32 `json:"addingReplicas,omitempty"`
	RemovingReplicas []int32 `json:"removingReplicas,omitempty"`
}

func (p PartitionRegistration) clone() PartitionRegistration {
	p.Replicas = slices.Clone(p.Replicas)
	p.ISR = slices.Clone(p.ISR)
	p.AddingReplicas = slices.Clone(p.AddingReplicas)
	p.RemovingReplicas = slices.Clone(p.RemovingReplicas)
	return p
}

func (p PartitionRegistration) equal(q PartitionRegistration) bool {
	return slices.Equal(p.Replicas, q.Replicas) && slices.Equal(p.ISR, q.ISR) &&
		p.Leader == q.Leader && p.LeaderEpoch == q.LeaderEpoch && p.PartitionEpoch == q.PartitionEpoch &&
		slices.Equal(p.AddingReplicas, q.AddingReplicas) && slices.Equal(p.RemovingReplicas, q.RemovingReplicas)
}

// Reassigning reports whether a reassignment is ongoing.
func (p PartitionRegistration) Reassigning() bool {
	return len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0
}

// TargetReplicas is the replica set the partition is being reassigned to
// (Replicas without RemovingReplicas), or Replicas when none is ongoing.
func (p PartitionRegistration) TargetReplicas() []int32 {
	return slices.DeleteFunc(slices.Clone(p.Replicas), func(id int32) bool { return slices.Contains(p.RemovingReplicas, id) })
}

// OriginalReplicas is the replica set before the ongoing reassignment
// (Replicas without AddingReplicas): what a cancellation reverts to.
func (p PartitionRegistration) OriginalReplicas() []int32 {
	return slices.DeleteFunc(slices.Clone(p.Replicas), func(id int32) bool { return slices.Contains(p.AddingReplicas, id) })
}

// TopicImage is one topic: its id, config overrides and partitions, indexed
// by partition number.
type TopicImage struct {
	Name       string                  `json:"name"`
	ID         [16]byte                `json:"id"`
	Configs    map[string]string       `json:"configs,omitempty"`
	Partitions []PartitionRegistration `json:"partitions"`
}

func (t *TopicImage) clone() *TopicImage {
	c := *t
	c.Configs = maps.Clone(t.Configs)
	c.Partitions = make([]PartitionRegistration, len(t.Partitions))
	for i, p := range t.Partitions {
		c.Partitions[i] = p.clone()
	}
	return &c
}

// Image is an immutable snapshot of the cluster metadata after applying the
// raft log up to Offset (Kafka's MetadataImage). Nothing in it may be
// modified: every applied entry makes a new Image sharing unchanged parts
// with the previous one.
type Image struct {
	// Offset is the raft index of the last applied metadata entry.
	Offset     uint64
	Brokers    map[int32]BrokerRegistration
	Topics     map[string]*TopicImage
	TopicsByID map[[16]byte]*TopicImage
	// NextProducerID is the first producer id no block has handed out.
	NextProducerID int64
	// ScramCredentials are the SCRAM users (scram.go).
	ScramCredentials map[ScramCredentialKey]ScramCredential
	// ACLs are the cluster's ACLs, never nil (see acls.go).
	ACLs *ACLsImage
}

func emptyImage() *Image {
	return &Image{
		Brokers:          map[int32]BrokerRegistration{},
		Topics:           map[string]*TopicImage{},
		TopicsByID:       map[[16]byte]*TopicImage{},
		ScramCredentials: map[ScramCredentialKey]ScramCredential{},
		ACLs:             emptyACLs,
	}
}

// eligible reports whether broker id may lead or join an ISR.
func (img *Image) eligible(id int32) bool {
	b, ok := img.Brokers[id]
	return ok && b.eligible()
}

// eligibleBrokers lists the brokers that may take new replicas, by id.
func (img *Image) eligibleBrokers() []int32 {
	var ids []int32
	for id, b := range img.Brokers {
		if b.eligible() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// sortedTopics lists the topics by name, so that records derived from an
// image come out in the same order on every run.
func (img *Image) sortedTopics() []*TopicImage {
	ts := slices.Collect(maps.Values(img.Topics))
	slices.SortFunc(ts, func(a, b *TopicImage) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return ts
}
