package storage

import (
	"path/filepath"
	"testing"

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
