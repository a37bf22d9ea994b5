package storage

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// scramCredentialsBucket holds a single node's SCRAM credentials: key
// mechanism name, NUL, user name; value the broker's encoding of the
// credential (opaque here). In a cluster they live in the replicated
// metadata instead.
var scramCredentialsBucket = []byte("scram-credentials")

// scramKey is a credential's key in the bucket.
func scramKey(mechanism, user string) []byte {
	return append(append([]byte(mechanism), 0), user...)
}

// PutScramCredentials stores and deletes credentials in one durable
// transaction: put maps mechanism → user → encoded credential.
func (s *MetaStore) PutScramCredentials(put map[[2]string][]byte, del [][2]string) error {
	return s.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(scramCredentialsBucket)
		if err != nil {
			return err
		}
		for _, k := range del {
			if err := b.Delete(scramKey(k[0], k[1])); err != nil {
				return err
			}
		}
		for k, v := range put {
			if err := b.Put(scramKey(k[0], k[1]), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// ScramCredentials returns every stored credential by [mechanism, user].
func (s *MetaStore) ScramCredentials() (map[[2]string][]byte, error) {
	out := map[[2]string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(scramCredentialsBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			mech, user, ok := bytes.Cut(k, []byte{0})
			if ok {
				out[[2]string{string(mech), string(user)}] = bytes.Clone(v)
			}
			return nil
		})
	})
	return out, err
}
