package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/kbroker/kbroker/internal/acl"
)

// Metadata log format.
//
// Each raft log command is one entry: a JSON object
//
//	{"version": 1, "records": [ {"type": "...", ...}, ... ]}
//
// whose records are applied together, in order, or not at all (Kafka's
// atomic record batches). A record names its type and carries only the
// fields of that type:
//
//	RegisterBroker            broker (its Epoch is set to the entry's raft index when applied)
//	FenceBroker               brokerId
//	UnfenceBroker             brokerId
//	BrokerControlledShutdown  brokerId
//	CreateTopic               topic (name, id, configs, partitions)
//	DeleteTopic               topicId
//	CreatePartitions          topicId, partitions (appended)
//	SetTopicConfigs           topicId, configs (replace all overrides)
//	PartitionChange           topicId, partition, registration (the whole new state;
//	                          replicas may change, with a new leader epoch
//	                          whenever a replica leaves, so it is fenced)
//	ProducerIds               nextProducerId
//	UserScramCredential       scram (name, mechanism, credential; see scram.go)
//	RemoveUserScramCredential scram (name, mechanism)
//	CoordinatorState          state (bytes: a change set of the group and
//	                          transaction coordinators' store, opaque here;
//	                          applied to Config.State, not to the image)
//	AccessControlEntry        aclId, acl (see acls.go)
//	RemoveAccessControlEntry  aclId
//
// Unknown fields, unknown types and a newer entry version are errors: a
// node must not apply a log it does not understand.
const entryVersion = 1

// Record types, named after Kafka's metadata records where one exists.
const (
	recRegisterBroker           = "RegisterBroker"
	recFenceBroker              = "FenceBroker"
	recUnfenceBroker            = "UnfenceBroker"
	recBrokerControlledShutdown = "BrokerControlledShutdown"
	recCreateTopic              = "CreateTopic"
	recDeleteTopic              = "DeleteTopic"
	recCreatePartitions         = "CreatePartitions"
	recSetTopicConfigs          = "SetTopicConfigs"
	recPartitionChange          = "PartitionChange"
	recProducerIDs              = "ProducerIds"
	recCoordinatorState         = "CoordinatorState"
)

// record is one metadata change. Only the fields of its Type are set.
type record struct {
	Type           string                  `json:"type"`
	Broker         *BrokerRegistration     `json:"broker,omitempty"`
	BrokerID       int32                   `json:"brokerId,omitempty"`
	Topic          *TopicImage             `json:"topic,omitempty"`
	TopicID        [16]byte                `json:"topicId,omitzero"`
	Partition      int32                   `json:"partition,omitempty"`
	Registration   *PartitionRegistration  `json:"registration,omitempty"`
	Partitions     []PartitionRegistration `json:"partitions,omitempty"`
	Configs        map[string]string       `json:"configs,omitempty"`
	NextProducerID int64                   `json:"nextProducerId,omitempty"`
	State          []byte                  `json:"state,omitempty"`
	ACLID          [16]byte                `json:"aclId,omitzero"`
	ACL            *acl.Binding            `json:"acl,omitempty"`
	Scram          *ScramCredentialRecord  `json:"scram,omitempty"`
}

type entry struct {
	Version int      `json:"version"`
	Records []record `json:"records"`
}

// ErrCorruptRecord is returned for metadata log bytes that do not decode.
var ErrCorruptRecord = errors.New("controller: corrupt metadata record")

func encodeEntry(recs []record) []byte {
	b, err := json.Marshal(entry{Version: entryVersion, Records: recs})
	if err != nil {
		panic(err) // only plain data: cannot happen
	}
	return b
}

// decodeEntry decodes and structurally checks an entry; references to
// brokers and topics are checked when it is applied.
func decodeEntry(b []byte) ([]record, error) {
	var e entry
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptRecord, err)
	}
	if d.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrCorruptRecord)
	}
	if e.Version != entryVersion {
		return nil, fmt.Errorf("%w: entry version %d", ErrCorruptRecord, e.Version)
	}
	if len(e.Records) == 0 {
		return nil, fmt.Errorf("%w: empty entry", ErrCorruptRecord)
	}
	for i := range e.Records {
		if err := e.Records[i].check(); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrCorruptRecord, i, err)
		}
	}
	return e.Records, nil
}

// check verifies a record carries what its type needs.
func (r *record) check() error {
	switch r.Type {
	case recRegisterBroker:
		if r.Broker == nil {
			return errors.New("no broker")
		}
	case recFenceBroker, recUnfenceBroker, recBrokerControlledShutdown:
	case recCreateTopic:
		if r.Topic == nil || r.Topic.Name == "" || len(r.Topic.Partitions) == 0 {
			return errors.New("no topic")
		}
		for _, p := range r.Topic.Partitions {
			if err := p.check(); err != nil {
				return err
			}
		}
	case recDeleteTopic, recSetTopicConfigs:
	case recCreatePartitions:
		if len(r.Partitions) == 0 {
			return errors.New("no partitions")
		}
		for _, p := range r.Partitions {
			if err := p.check(); err != nil {
				return err
			}
		}
	case recPartitionChange:
		if r.Registration == nil {
			return errors.New("no registration")
		}
		return r.Registration.check()
	case recProducerIDs:
	case recCoordinatorState:
		if len(r.State) == 0 {
			return errors.New("no state")
		}
	case recAccessControlEntry, recRemoveAccessControlEntry:
		return r.checkACL()
	case recUserScramCredential, recRemoveUserScramCredential:
		return r.checkScramRecord()
	default:
		return fmt.Errorf("unknown record type %q", r.Type)
	}
	return nil
}

// check verifies a registration's invariants: distinct replicas, an ISR
// drawn from them and never empty, a leader in the ISR or -1, and for a
// reassignment, adding and removing replicas drawn from the replicas,
// each once, disjoint, and leaving a non-empty target.
func (p *PartitionRegistration) check() error {
	if err := p.checkReassignment(); err != nil {
		return err
	}
	if len(p.Replicas) == 0 || len(p.ISR) == 0 {
		return errors.New("empty replicas or isr")
	}
	if hasDuplicates(p.Replicas) || hasDuplicates(p.ISR) {
		return errors.New("duplicate replica")
	}
	for _, id := range p.ISR {
		if !slices.Contains(p.Replicas, id) {
			return fmt.Errorf("isr member %d is not a replica", id)
		}
	}
	if p.Leader != -1 && !slices.Contains(p.ISR, p.Leader) {
		return fmt.Errorf("leader %d not in isr", p.Leader)
	}
	if p.LeaderEpoch < 0 || p.PartitionEpoch < 0 {
		return errors.New("negative epoch")
	}
	return nil
}

func (p *PartitionRegistration) checkReassignment() error {
	if hasDuplicates(p.AddingReplicas) || hasDuplicates(p.RemovingReplicas) {
		return errors.New("duplicate adding or removing replica")
	}
	for _, id := range p.AddingReplicas {
		if !slices.Contains(p.Replicas, id) {
			return fmt.Errorf("adding replica %d is not a replica", id)
		}
		if slices.Contains(p.RemovingReplicas, id) {
			return fmt.Errorf("replica %d is both adding and removing", id)
		}
	}
	for _, id := range p.RemovingReplicas {
		if !slices.Contains(p.Replicas, id) {
			return fmt.Errorf("removing replica %d is not a replica", id)
		}
	}
	if len(p.RemovingReplicas) >= len(p.Replicas) && len(p.Replicas) > 0 {
		return errors.New("reassignment removes every replica")
	}
	return nil
}

func hasDuplicates(ids []int32) bool {
	for i, id := range ids {
		if slices.Contains(ids[i+1:], id) {
			return true
		}
	}
	return false
}

// apply returns the image after the entry at raft index offset. The input
// image is not modified. An entry whose records do not fit the image (a
// topic that does not exist, ...) is refused whole, on every node alike.
func (img *Image) apply(offset uint64, recs []record) (*Image, error) {
	n := &Image{
		Offset:           offset,
		Brokers:          maps.Clone(img.Brokers),
		Topics:           maps.Clone(img.Topics),
		TopicsByID:       maps.Clone(img.TopicsByID),
		NextProducerID:   img.NextProducerID,
		ScramCredentials: img.ScramCredentials,
		ACLs:             img.ACLs,
	}
	copied := map[[16]byte]bool{} // topics already cloned for this entry
	scramCopied, aclsCopied := false, false
	topic := func(id [16]byte) (*TopicImage, error) {
		t, ok := n.TopicsByID[id]
		if !ok {
			return nil, fmt.Errorf("unknown topic id %x", id)
		}
		if !copied[id] {
			t = t.clone()
			copied[id] = true
			n.Topics[t.Name], n.TopicsByID[id] = t, t
		}
		return t, nil
	}
	for i, r := range recs {
		if r.Type == recUserScramCredential || r.Type == recRemoveUserScramCredential {
			if err := n.applyScramRecord(r, &scramCopied); err != nil {
				return img, fmt.Errorf("record %d (%s): %w", i, r.Type, err)
			}
			continue
		}
		if r.Type == recAccessControlEntry || r.Type == recRemoveAccessControlEntry {
			if err := n.applyACLRecord(r, &aclsCopied); err != nil {
				return img, fmt.Errorf("record %d (%s): %w", i, r.Type, err)
			}
			continue
		}
		if err := n.applyRecord(offset, r, topic, copied); err != nil {
			return img, fmt.Errorf("record %d (%s): %w", i, r.Type, err)
		}
	}
	return n, nil
}

func (n *Image) applyRecord(offset uint64, r record, topic func([16]byte) (*TopicImage, error), copied map[[16]byte]bool) error {
	broker := func(id int32) (BrokerRegistration, error) {
		b, ok := n.Brokers[id]
		if !ok {
			return b, fmt.Errorf("unknown broker %d", id)
		}
		return b, nil
	}
	switch r.Type {
	case recRegisterBroker:
		b := *r.Broker
		b.Epoch = int64(offset)
		b.Endpoints = slices.Clone(b.Endpoints)
		n.Brokers[b.ID] = b
	case recFenceBroker, recUnfenceBroker, recBrokerControlledShutdown:
		b, err := broker(r.BrokerID)
		if err != nil {
			return err
		}
		switch r.Type {
		case recFenceBroker:
			b.Fenced = true
		case recUnfenceBroker:
			b.Fenced, b.InControlledShutdown = false, false
		default:
			b.InControlledShutdown = true
		}
		n.Brokers[r.BrokerID] = b
	case recCreateTopic:
		if _, ok := n.Topics[r.Topic.Name]; ok {
			return fmt.Errorf("topic %q exists", r.Topic.Name)
		}
		if _, ok := n.TopicsByID[r.Topic.ID]; ok {
			return fmt.Errorf("topic id %x exists", r.Topic.ID)
		}
		t := r.Topic.clone()
		n.Topics[t.Name], n.TopicsByID[t.ID] = t, t
		copied[t.ID] = true
	case recDeleteTopic:
		t, ok := n.TopicsByID[r.TopicID]
		if !ok {
			return fmt.Errorf("unknown topic id %x", r.TopicID)
		}
		delete(n.Topics, t.Name)
		delete(n.TopicsByID, r.TopicID)
	case recCreatePartitions:
		t, err := topic(r.TopicID)
		if err != nil {
			return err
		}
		for _, p := range r.Partitions {
			t.Partitions = append(t.Partitions, p.clone())
		}
	case recSetTopicConfigs:
		t, err := topic(r.TopicID)
		if err != nil {
			return err
		}
		t.Configs = maps.Clone(r.Configs)
	case recPartitionChange:
		t, err := topic(r.TopicID)
		if err != nil {
			return err
		}
		if r.Partition < 0 || int(r.Partition) >= len(t.Partitions) {
			return fmt.Errorf("unknown partition %d", r.Partition)
		}
		old := t.Partitions[r.Partition]
		p := r.Registration.clone()
		if p.LeaderEpoch < old.LeaderEpoch || p.PartitionEpoch <= old.PartitionEpoch {
			return errors.New("partition change must not lower epochs")
		}
		for _, id := range old.Replicas {
			if !slices.Contains(p.Replicas, id) && p.LeaderEpoch == old.LeaderEpoch {
				return fmt.Errorf("replica %d leaves without a new leader epoch", id)
			}
		}
		t.Partitions[r.Partition] = p
	case recProducerIDs:
		if r.NextProducerID <= n.NextProducerID {
			return fmt.Errorf("producer ids would go back from %d to %d", n.NextProducerID, r.NextProducerID)
		}
		n.NextProducerID = r.NextProducerID
	}
	return nil
}
