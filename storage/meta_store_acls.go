package storage

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/acl"
)

// aclsBucket holds a single node's ACLs: 16-byte ACL id -> JSON acl.Binding
// (a cluster keeps them in the metadata log instead). It is created by the
// first write, so data directories from before ACLs open unchanged.
var aclsBucket = []byte("acls")

// ACLs returns every stored ACL by id.
func (s *MetaStore) ACLs() (map[[16]byte]acl.Binding, error) {
	out := map[[16]byte]acl.Binding{}
	err := s.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(aclsBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var binding acl.Binding
			if len(k) != 16 {
				return fmt.Errorf("storage: malformed acl id %x", k)
			}
			if err := json.Unmarshal(v, &binding); err != nil {
				return fmt.Errorf("storage: malformed acl %x: %w", k, err)
			}
			out[[16]byte(k)] = binding
			return nil
		})
	})
	return out, err
}

// UpdateACLs stores put and removes del, in one durable transaction.
func (s *MetaStore) UpdateACLs(put map[[16]byte]acl.Binding, del [][16]byte) error {
	return s.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(aclsBucket)
		if err != nil {
			return err
		}
		for id, binding := range put {
			v, err := json.Marshal(binding)
			if err != nil {
				return err
			}
			if err := b.Put(id[:], v); err != nil {
				return err
			}
		}
		for _, id := range del {
			if err := b.Delete(id[:]); err != nil {
				return err
			}
		}
		return nil
	})
}
