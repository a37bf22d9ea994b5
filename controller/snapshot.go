package controller

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Snapshot format: one JSON object holding the whole image,
//
//	{"version": 1, "offset": N, "brokers": [...], "topics": [...], "nextProducerId": N,
//	 "coordinatorState": base64, "scramCredentials": [...], "acls": [...]}
//
// brokers by id, topics by name; coordinatorState (optional) is the
// StateStore's whole state. Restore checks it as strictly as the log:
// unknown fields, duplicate brokers, topics or ids, and partitions that
// break their invariants are errors.
const snapshotVersion = 1

type snapshotData struct {
	Version        int                     `json:"version"`
	Offset         uint64                  `json:"offset"`
	Brokers        []BrokerRegistration    `json:"brokers"`
	Topics         []*TopicImage           `json:"topics"`
	NextProducerID int64                   `json:"nextProducerId"`
	State          []byte                  `json:"coordinatorState,omitempty"`
	Scram          []ScramCredentialRecord `json:"scramCredentials,omitempty"`
	ACLs           []ACLEntry              `json:"acls,omitempty"`
}

func encodeSnapshot(img *Image, state []byte) []byte {
	s := snapshotData{Version: snapshotVersion, Offset: img.Offset, NextProducerID: img.NextProducerID, State: state, ACLs: snapshotACLs(img)}
	for _, b := range img.Brokers {
		s.Brokers = append(s.Brokers, b)
	}
	slices.SortFunc(s.Brokers, func(a, b BrokerRegistration) int { return int(a.ID) - int(b.ID) })
	s.Topics = img.sortedTopics()
	s.Scram = img.scramSnapshot()
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // only plain data: cannot happen
	}
	return b
}

func decodeSnapshot(b []byte) (*Image, []byte, error) {
	var s snapshotData
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return nil, nil, fmt.Errorf("%w: snapshot: %v", ErrCorruptRecord, err)
	}
	if d.More() {
		return nil, nil, fmt.Errorf("%w: snapshot: trailing data", ErrCorruptRecord)
	}
	if s.Version != snapshotVersion {
		return nil, nil, fmt.Errorf("%w: snapshot version %d", ErrCorruptRecord, s.Version)
	}
	img := emptyImage()
	img.Offset, img.NextProducerID = s.Offset, s.NextProducerID
	if err := restoreScram(img, s.Scram); err != nil {
		return nil, nil, err
	}
	if err := restoreACLs(img, s.ACLs); err != nil {
		return nil, nil, fmt.Errorf("%w: snapshot: %v", ErrCorruptRecord, err)
	}
	for _, b := range s.Brokers {
		if _, dup := img.Brokers[b.ID]; dup {
			return nil, nil, fmt.Errorf("%w: snapshot: broker %d twice", ErrCorruptRecord, b.ID)
		}
		img.Brokers[b.ID] = b
	}
	for _, t := range s.Topics {
		if t == nil || t.Name == "" || len(t.Partitions) == 0 {
			return nil, nil, fmt.Errorf("%w: snapshot: empty topic", ErrCorruptRecord)
		}
		if _, dup := img.Topics[t.Name]; dup {
			return nil, nil, fmt.Errorf("%w: snapshot: topic %q twice", ErrCorruptRecord, t.Name)
		}
		if _, dup := img.TopicsByID[t.ID]; dup {
			return nil, nil, fmt.Errorf("%w: snapshot: topic id %x twice", ErrCorruptRecord, t.ID)
		}
		for i := range t.Partitions {
			if err := t.Partitions[i].check(); err != nil {
				return nil, nil, fmt.Errorf("%w: snapshot: %s-%d: %v", ErrCorruptRecord, t.Name, i, err)
			}
		}
		img.Topics[t.Name], img.TopicsByID[t.ID] = t, t
	}
	return img, s.State, nil
}
