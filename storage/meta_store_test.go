package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kbroker/kbroker/internal/acl"
)

// A new store takes the given cluster id; an existing one keeps its own; a
// malformed id is refused.
func TestMetaStoreClusterID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	const id = "4L6g3nShT-eMCtK--X86sw"
	s, err := OpenMetaStore(path, id)
	if err != nil {
		t.Fatal(err)
	}
	if s.ClusterID() != id {
		t.Errorf("cluster id %q, want %q", s.ClusterID(), id)
	}
	s.Close()
	if s, err = OpenMetaStore(path, "MkU3OEVBNTcwNTJENDM2Qg"); err != nil {
		t.Fatal(err)
	}
	if s.ClusterID() != id {
		t.Errorf("reopened with another id: %q, want the stored %q", s.ClusterID(), id)
	}
	s.Close()
	if s, err = OpenMetaStore(filepath.Join(t.TempDir(), "meta.db"), ""); err != nil || len(s.ClusterID()) != 22 {
		t.Errorf("random id %q, %v", s.ClusterID(), err)
	} else {
		s.Close()
	}
	for _, bad := range []string{"short", "4L6g3nShT-eMCtK--X86s!", "4L6g3nShT-eMCtK--X86sw4L6g"} {
		if _, err := OpenMetaStore(filepath.Join(t.TempDir(), "meta.db"), bad); err == nil {
			t.Errorf("cluster id %q accepted", bad)
		}
	}
}

func TestMetaStoreACLs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	m, err := OpenMetaStore(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.ACLs(); err != nil || len(got) != 0 {
		t.Fatalf("ACLs of a new store = %v, %v", got, err)
	}
	b := acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: "t", PatternType: acl.PatternLiteral,
		Principal: "User:alice", Host: "*", Operation: acl.OpRead, Permission: acl.PermissionAllow}
	id1, id2 := [16]byte{1}, [16]byte{2}
	if err := m.UpdateACLs(map[[16]byte]acl.Binding{id1: b, id2: b}, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.UpdateACLs(nil, [][16]byte{id1}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if m, err = OpenMetaStore(path, ""); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, err := m.ACLs()
	if err != nil || len(got) != 1 || got[id2] != b {
		t.Fatalf("ACLs after reopen = %v, %v", got, err)
	}
}

// A meta.db built with its syncs deferred exists only once SyncNew has run:
// a start that dies before leaves nothing the next one trusts.
func TestMetaStoreDeferredSync(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meta.db")
	s, err := openMetaStore(path, "", true)
	if err != nil {
		t.Fatal(err)
	}
	first := s.ClusterID()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("meta.db exists before SyncNew: %v", err)
	}
	s.Close() // a start that failed before SyncNew

	s, err = openMetaStore(path, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if s.ClusterID() == first {
		t.Fatal("an unsynced meta.db was reused")
	}
	second := s.ClusterID()
	if err := s.SyncNew(); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path + newMetaSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left behind: %v", newMetaSuffix, err)
	}

	s, err = openMetaStore(path, "", true) // exists now: opened as it is
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.ClusterID() != second || s.pendingPath != "" || s.db.NoSync {
		t.Fatalf("reopened: cluster id %q (want %q), pending %q, NoSync %v", s.ClusterID(), second, s.pendingPath, s.db.NoSync)
	}
	s.View(func(tx *bolt.Tx) error {
		if string(tx.Bucket(metaBucket).Get([]byte("k"))) != "v" {
			t.Error("write after SyncNew lost")
		}
		return nil
	})
}

// With SyncNewInBackground a write waits for the new database to be
// durable: once Update returns, meta.db is in place and commits sync.
func TestMetaStoreSyncNewInBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := openMetaStore(path, "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SyncNewInBackground()
	if err := s.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("meta.db missing after a write: %v", err)
	}
	if _, err := os.Stat(path + newMetaSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left behind: %v", newMetaSuffix, err)
	}
	if s.db.NoSync || s.WaitDurable() != nil {
		t.Fatalf("after the background sync: NoSync %v, err %v", s.db.NoSync, s.WaitDurable())
	}
}

// writeEmptyBolt's copy is a valid, empty bbolt database that a deferred
// open takes as it is; it never overwrites a file.
func TestWriteEmptyBolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db.new")
	if err := writeEmptyBolt(path); errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if fi.Size() != int64(4*os.Getpagesize()) {
		t.Fatalf("copy of %d bytes, want the 4 pages bbolt initialises", fi.Size())
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	var problems []error
	db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			problems = append(problems, err)
		}
		return nil
	})
	db.Close()
	if len(problems) > 0 {
		t.Fatalf("consistency check: %v", problems)
	}
	if err := writeEmptyBolt(path); !errors.Is(err, os.ErrExist) {
		t.Fatalf("writing over an existing file: %v, want ErrExist", err)
	}
}
