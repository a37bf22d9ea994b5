package controller

import (
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/internal/acl"
)

func testBinding(name string) acl.Binding {
	return acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: name, PatternType: acl.PatternLiteral,
		Principal: "User:alice", Host: "*", Operation: acl.OpRead, Permission: acl.PermissionAllow}
}

// ACL records apply to the image, are checked, and survive a snapshot.
func TestACLRecords(t *testing.T) {
	t.Parallel()
	img := emptyImage()
	b := testBinding("t")
	id := [16]byte{7}
	n, err := img.apply(1, []record{{Type: recAccessControlEntry, ACLID: id, ACL: &b}})
	if err != nil || n.ACLs.ByID[id] != b || len(img.ACLs.ByID) != 0 {
		t.Fatalf("apply: %v %+v (old image %+v)", err, n.ACLs, img.ACLs)
	}
	if _, err := n.apply(2, []record{{Type: recAccessControlEntry, ACLID: id, ACL: &b}}); err == nil {
		t.Error("an acl id twice applied")
	}
	got, _, err := decodeSnapshot(encodeSnapshot(n, nil))
	if err != nil || got.ACLs.ByID[id] != b {
		t.Fatalf("snapshot round trip: %v %+v", err, got.ACLs)
	}
	n2, err := n.apply(3, []record{{Type: recRemoveAccessControlEntry, ACLID: id}})
	if err != nil || len(n2.ACLs.ByID) != 0 {
		t.Fatalf("remove: %v %+v", err, n2.ACLs)
	}
	if _, err := n2.apply(4, []record{{Type: recRemoveAccessControlEntry, ACLID: id}}); err == nil {
		t.Error("an unknown acl removed")
	}
	bad := b
	bad.Operation = acl.OpAny
	if _, err := decodeEntry(encodeEntry([]record{{Type: recAccessControlEntry, ACLID: id, ACL: &bad}})); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("an invalid acl decodes: %v", err)
	}
}

// ACLs created on a follower reach every node; deletes by filter too;
// invalid bindings and filters fail alone with INVALID_REQUEST.
func TestACLsReplicated(t *testing.T) {
	tc := startCluster(t, 3)
	f := tc.follower()
	bad := testBinding("x")
	bad.PatternType = acl.PatternMatch
	errs, err := tc.nodes[f].CreateACLs(testCtx(t), []acl.Binding{testBinding("a"), bad, testBinding("b"), testBinding("a")})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || !errors.Is(errs[1], kerr.InvalidRequest) || errs[2] != nil || errs[3] != nil {
		t.Fatalf("CreateACLs results %v", errs)
	}
	tc.allImages("two acls", func(img *Image) bool { return len(img.ACLs.ByID) == 2 })
	name := "a"
	deleted, err := tc.nodes[tc.active()].DeleteACLs(testCtx(t), []acl.Filter{
		{ResourceType: acl.ResourceTopic, ResourceName: &name, PatternType: acl.PatternLiteral, Operation: acl.OpAny, Permission: acl.PermissionAny},
	})
	if err != nil || len(deleted) != 1 || len(deleted[0]) != 1 || deleted[0][0] != testBinding("a") {
		t.Fatalf("DeleteACLs = %v, %v", deleted, err)
	}
	tc.allImages("one acl", func(img *Image) bool { return len(img.ACLs.ByID) == 1 })
}

// One request adds or removes at most MaxRecordsPerUserOp ACLs; past that
// it changes nothing and its valid entries get POLICY_VIOLATION. ACLs that
// exist already do not count.
func TestACLsPerRequestLimit(t *testing.T) {
	tc := startCluster(t, 1)
	c := tc.nodes[tc.active()]
	bindings := func(from, n int) []acl.Binding {
		var out []acl.Binding
		for i := from; i < from+n; i++ {
			out = append(out, testBinding(fmt.Sprintf("limit-%d", i)))
		}
		return out
	}
	if errs, err := c.CreateACLs(testCtx(t), bindings(0, 6000)); err != nil || errs[0] != nil {
		t.Fatalf("6,000: %v %v", err, errs[0])
	}
	if errs, err := c.CreateACLs(testCtx(t), bindings(0, 12000)); err != nil || errs[11999] != nil {
		t.Fatalf("6,000 new among 12,000: %v %v", err, errs[11999])
	}
	errs, err := c.CreateACLs(testCtx(t), bindings(12000, MaxRecordsPerUserOp+1))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if !errors.Is(e, kerr.PolicyViolation) {
			t.Fatalf("creation %d of 10,001: %v, want POLICY_VIOLATION", i, e)
		}
	}
	tc.allImages("12,000 acls", func(img *Image) bool { return len(img.ACLs.ByID) == 12000 })
	if _, err := c.DeleteACLs(testCtx(t), []acl.Filter{{ResourceType: acl.ResourceTopic, PatternType: acl.PatternAny, Operation: acl.OpAny, Permission: acl.PermissionAny}}); !errors.Is(err, kerr.PolicyViolation) {
		t.Fatalf("deleting 12,000: %v, want POLICY_VIOLATION", err)
	}
	tc.allImages("12,000 acls after the refused delete", func(img *Image) bool { return len(img.ACLs.ByID) == 12000 })
}
