package coordinator

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/batchwriter"
	"github.com/kbroker/kbroker/internal/kvlog"
)

var (
	groupsBucket  = []byte("groups")        // group id -> JSON storedGroup
	offsetsBucket = []byte("group-offsets") // group id -> bucket: topic 0x00 partition(BE) -> offsetValue
)

// storedGroup is a group's metadata record (Kafka's GroupMetadataValue and
// ConsumerGroup* records, folded into one document per group).
type storedGroup struct {
	Type     string          `json:"type"` // "classic" or "consumer"
	Classic  *classicRecord  `json:"classic,omitempty"`
	Consumer *consumerRecord `json:"consumer,omitempty"`
}

// OffsetAndMetadata is one committed offset (Kafka's OffsetAndMetadata).
type OffsetAndMetadata struct {
	Offset          int64
	LeaderEpoch     int32 // -1 if unknown
	Metadata        string
	CommitTimestamp int64 // ms
	ExpireTimestamp int64 // ms; -1 unless OffsetCommit v2-4 set a retention time
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func offsetKey(tp TopicPartition) []byte {
	k := make([]byte, 0, len(tp.Topic)+5)
	k = append(k, tp.Topic...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(tp.Partition))
}

func parseOffsetKey(k []byte) (TopicPartition, error) {
	if len(k) < 5 || k[len(k)-5] != 0 {
		return TopicPartition{}, fmt.Errorf("bad offset key %x", k)
	}
	return TopicPartition{Topic: string(k[:len(k)-5]), Partition: int32(binary.BigEndian.Uint32(k[len(k)-4:]))}, nil
}

// offsetValueVersion leads every stored offset value:
//
//	version 1 | offset int64 | leader epoch int32 | commit ms int64 |
//	expire ms int64 | metadata (the rest)
const offsetValueVersion = 1

func encodeOffset(o OffsetAndMetadata) []byte {
	v := make([]byte, 29, 29+len(o.Metadata))
	v[0] = offsetValueVersion
	binary.BigEndian.PutUint64(v[1:], uint64(o.Offset))
	binary.BigEndian.PutUint32(v[9:], uint32(o.LeaderEpoch))
	binary.BigEndian.PutUint64(v[13:], uint64(o.CommitTimestamp))
	binary.BigEndian.PutUint64(v[21:], uint64(o.ExpireTimestamp))
	return append(v, o.Metadata...)
}

func decodeOffset(v []byte) (OffsetAndMetadata, error) {
	if len(v) < 29 || v[0] != offsetValueVersion {
		return OffsetAndMetadata{}, fmt.Errorf("offset value of %d bytes is not version %d", len(v), offsetValueVersion)
	}
	return OffsetAndMetadata{
		Offset:          int64(binary.BigEndian.Uint64(v[1:])),
		LeaderEpoch:     int32(binary.BigEndian.Uint32(v[9:])),
		CommitTimestamp: int64(binary.BigEndian.Uint64(v[13:])),
		ExpireTimestamp: int64(binary.BigEndian.Uint64(v[21:])),
		Metadata:        string(v[29:]),
	}, nil
}

// store is coordinator state in bbolt: its buckets, read at start, and the
// single writer every change goes through (one fsync per batch). Every
// write goes through a kvlog.Tx, so that a replicated DB can ship it (the
// part of __consumer_offsets Kafka replicates); reads go to bbolt.
type store struct {
	db kvlog.DB
	*batchwriter.Writer
}

func newStore(db kvlog.DB) (*store, error) {
	if err := kvlog.CreateBuckets(db, groupsBucket, offsetsBucket, txnOffsetsBucket); err != nil {
		return nil, err
	}
	return &store{db: db, Writer: batchwriter.New(db)}, nil
}

// Writes, as closures over copies of what they store.

// groupOffsetsPath is the bucket of a group's committed offsets.
func groupOffsetsPath(group string) [][]byte { return [][]byte{offsetsBucket, []byte(group)} }

func putOffsets(group string, offsets map[TopicPartition]OffsetAndMetadata) func(tx *kvlog.Tx) error {
	return func(tx *kvlog.Tx) error {
		path := groupOffsetsPath(group)
		if len(offsets) == 0 {
			// Put creates the group's bucket; an empty commit leaves it too.
			return tx.CreateBucket(path)
		}
		for tp, o := range offsets {
			if err := tx.Put(path, offsetKey(tp), encodeOffset(o)); err != nil {
				return err
			}
		}
		return nil
	}
}

func deleteOffsets(group string, tps []TopicPartition) func(tx *kvlog.Tx) error {
	return func(tx *kvlog.Tx) error {
		if tx.Bolt().Bucket(offsetsBucket).Bucket([]byte(group)) == nil {
			return nil
		}
		path := groupOffsetsPath(group)
		for _, tp := range tps {
			if err := tx.Delete(path, offsetKey(tp)); err != nil {
				return err
			}
		}
		return nil
	}
}

func putGroup(id string, rec storedGroup) func(tx *kvlog.Tx) error {
	v, err := json.Marshal(rec)
	return func(tx *kvlog.Tx) error {
		if err != nil {
			return err
		}
		return tx.Put([][]byte{groupsBucket}, []byte(id), v)
	}
}

// deleteGroup removes a group's metadata and all its offsets, staged ones
// included.
func deleteGroup(id string) func(tx *kvlog.Tx) error {
	return func(tx *kvlog.Tx) error {
		if err := tx.Delete([][]byte{groupsBucket}, []byte(id)); err != nil {
			return err
		}
		if err := deleteGroupTxnOffsets(tx, id); err != nil {
			return err
		}
		return tx.DeleteBucket(groupOffsetsPath(id))
	}
}

// load reads every stored group and offset.
func (s *store) load() (map[string]storedGroup, map[string]map[TopicPartition]OffsetAndMetadata, error) {
	groups := make(map[string]storedGroup)
	offsets := make(map[string]map[TopicPartition]OffsetAndMetadata)
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(groupsBucket).ForEach(func(k, v []byte) error {
			var rec storedGroup
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("group %q: %w", k, err)
			}
			groups[string(k)] = rec
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(offsetsBucket).ForEachBucket(func(g []byte) error {
			m := make(map[TopicPartition]OffsetAndMetadata)
			offsets[string(g)] = m
			return tx.Bucket(offsetsBucket).Bucket(g).ForEach(func(k, v []byte) error {
				tp, err := parseOffsetKey(k)
				if err != nil {
					return err
				}
				o, err := decodeOffset(v)
				if err != nil {
					return fmt.Errorf("group %q %s/%d: %w", g, tp.Topic, tp.Partition, err)
				}
				m[tp] = o
				return nil
			})
		})
	})
	return groups, offsets, err
}
