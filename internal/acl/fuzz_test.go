package acl

import (
	"strings"
	"testing"
)

// FuzzAuthorize checks the indexed decision against a plain scan over every
// ACL (the rules in the package doc, written out the slow way), and that
// a filter built from a valid binding's own fields selects it. Invariants:
// never panics; index == scan; exact filter matches; MATCH filter on a
// name selects every binding whose pattern matches that name.
func FuzzAuthorize(f *testing.F) {
	f.Add("foo", int8(3), int8(3), "User:alice", "*", int8(3), int8(3), "foobar", int8(3), "User:alice", "h")
	f.Add("*", int8(3), int8(2), "User:*", "h", int8(2), int8(2), "x", int8(8), "User:bob", "h")
	f.Add("fo", int8(4), int8(3), "User:alice", "*", int8(4), int8(3), "foo", int8(8), "User:alice", "h")
	f.Fuzz(func(t *testing.T, name string, pt, rt int8, principal, host string, op, perm int8,
		qname string, qop int8, qprincipal, qhost string) {
		b := Binding{ResourceType(rt), name, PatternType(pt), principal, host, Operation(op), Permission(perm)}
		if b.Validate() != nil {
			return
		}
		// A second binding of the opposite permission on the queried name.
		b2 := b
		b2.ResourceName, b2.PatternType = qname, PatternLiteral
		b2.Permission = PermissionAllow + PermissionDeny - b.Permission
		set := []Binding{b}
		if b2.Validate() == nil {
			set = append(set, b2)
		}
		a := New(nil, false)
		a.SetACLs(set)
		got := a.Authorize(qprincipal, qhost, Operation(qop), b.ResourceType, qname)
		if want := scan(set, qprincipal, qhost, Operation(qop), b.ResourceType, qname); got != want {
			t.Fatalf("Authorize = %v, scan = %v for %v", got, want, set)
		}
		exact := Filter{ResourceType: b.ResourceType, ResourceName: &b.ResourceName, PatternType: b.PatternType,
			Principal: &b.Principal, Host: &b.Host, Operation: b.Operation, Permission: b.Permission}
		if exact.Validate() != nil || !exact.Matches(b) {
			t.Fatalf("exact filter does not select %v", b)
		}
		match := Filter{ResourceType: b.ResourceType, ResourceName: &qname, PatternType: PatternMatch, Operation: OpAny, Permission: PermissionAny}
		if got, want := match.Matches(b), patternMatches(b, qname); got != want {
			t.Fatalf("MATCH %q on %v = %v, want %v", qname, b, got, want)
		}
	})
}

func patternMatches(b Binding, name string) bool {
	switch b.PatternType {
	case PatternLiteral:
		return b.ResourceName == name || b.ResourceName == Wildcard
	case PatternPrefixed:
		return strings.HasPrefix(name, b.ResourceName)
	}
	return false
}

func scan(set []Binding, principal, host string, op Operation, rt ResourceType, name string) bool {
	found, allowed := false, false
	for _, b := range set {
		if b.ResourceType != rt || !patternMatches(b, name) {
			continue
		}
		found = true
		b.Host = canonicalHost(b.Host)
		switch applies(b, principal, canonicalHost(host), op) {
		case PermissionDeny:
			return false
		case PermissionAllow:
			allowed = true
		}
	}
	return found && allowed
}
