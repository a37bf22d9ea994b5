package storage

import (
	"path/filepath"
	"testing"
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
