package acl

import (
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
)

// Authorizer decides requests against a set of ACLs (Kafka's
// StandardAuthorizer). SetACLs replaces the set atomically; Authorize may
// run concurrently with it and sees either the old set or the new one.
type Authorizer struct {
	superUsers map[string]bool
	// allowIfNoACL is allow.everyone.if.no.acl.found: what a resource
	// no ACL matches gets.
	allowIfNoACL bool
	index        atomic.Pointer[index]
}

// New returns an Authorizer with no ACLs. superUsers are Type:Name
// principals (super.users split on ';').
func New(superUsers []string, allowEveryoneIfNoACLFound bool) *Authorizer {
	a := &Authorizer{superUsers: map[string]bool{}, allowIfNoACL: allowEveryoneIfNoACLFound}
	for _, u := range superUsers {
		if u = strings.TrimSpace(u); u != "" {
			a.superUsers[u] = true
		}
	}
	a.index.Store(newIndex(nil))
	return a
}

// ParseSuperUsers splits super.users: principals separated by ';'.
func ParseSuperUsers(v string) []string {
	var out []string
	for _, u := range strings.Split(v, ";") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// IsSuperUser reports whether principal is in super.users.
func (a *Authorizer) IsSuperUser(principal string) bool { return a.superUsers[principal] }

// SetACLs makes bindings the ACLs in force.
func (a *Authorizer) SetACLs(bindings []Binding) { a.index.Store(newIndex(bindings)) }

// ACLs returns the bindings the filter selects.
func (a *Authorizer) ACLs(f Filter) []Binding {
	var out []Binding
	for _, b := range a.index.Load().all {
		if f.Matches(b) {
			out = append(out, b)
		}
	}
	return out
}

// Authorize reports whether principal, connected from host (an IP address
// as text), may perform op on the resource named name of type rt.
func (a *Authorizer) Authorize(principal, host string, op Operation, rt ResourceType, name string) bool {
	if a.superUsers[principal] {
		return true
	}
	return a.index.Load().decide(principal, canonicalHost(host), op, rt, name, a.allowIfNoACL)
}

// canonicalHost writes an IPv6 address one way, so that an ACL for
// 0:0:0:0:0:0:0:1 (Java's InetAddress.getHostAddress form, which Kafka
// compares) matches a client at ::1; an IPv4-mapped address is its IPv4
// form. Anything else is left as it is.
func canonicalHost(h string) string {
	if !strings.Contains(h, ":") {
		return h
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	return h
}

// AuthorizeByResourceType reports whether principal may perform op on at
// least one resource of type rt that could exist (Kafka's
// Authorizer.authorizeByResourceType, used where a request names no
// resource, e.g. InitProducerId without a transactional id): an ALLOW for
// some pattern that no DENY dominates (a DENY on the same literal, on a
// prefix of it, or on the wildcard).
func (a *Authorizer) AuthorizeByResourceType(principal, host string, op Operation, rt ResourceType) bool {
	// A name no ACL is likely to carry: super users, and an empty ACL set
	// with allow.everyone.if.no.acl.found, pass here.
	if a.Authorize(principal, host, op, rt, "hardcode") {
		return true
	}
	ti := a.index.Load().byType[rt]
	if ti == nil {
		return false
	}
	host = canonicalHost(host)
	var denyLiteral, denyPrefixed, allowLiteral, allowPrefixed []string
	wildcardAllow := false
	for _, b := range ti.all {
		if (b.Host != host && b.Host != Wildcard) || (b.Principal != principal && b.Principal != WildcardPrincipal) ||
			(b.Operation != op && b.Operation != OpAll) {
			continue
		}
		switch {
		case b.Permission == PermissionDeny && b.PatternType == PatternLiteral:
			if b.ResourceName == Wildcard {
				return false
			}
			denyLiteral = append(denyLiteral, b.ResourceName)
		case b.Permission == PermissionDeny:
			denyPrefixed = append(denyPrefixed, b.ResourceName)
		case b.PatternType == PatternLiteral && b.ResourceName == Wildcard:
			wildcardAllow = true
		case b.PatternType == PatternLiteral:
			allowLiteral = append(allowLiteral, b.ResourceName)
		default:
			allowPrefixed = append(allowPrefixed, b.ResourceName)
		}
	}
	if wildcardAllow {
		return true
	}
	dominated := func(n string) bool {
		return slices.ContainsFunc(denyPrefixed, func(p string) bool { return strings.HasPrefix(n, p) })
	}
	for _, n := range allowLiteral {
		if !slices.Contains(denyLiteral, n) && !dominated(n) {
			return true
		}
	}
	for _, n := range allowPrefixed {
		if !dominated(n) {
			return true
		}
	}
	return false
}

// index is an immutable ACL set arranged for lookups.
type index struct {
	all    []Binding
	byType map[ResourceType]*typeIndex
}

type typeIndex struct {
	all      []Binding
	literal  map[string][]Binding // by name, the wildcard "*" included
	prefixed map[string][]Binding // by prefix
	// prefixLens are the distinct lengths of the prefixes, ascending: a
	// name is looked up at these lengths only.
	prefixLens []int
}

func newIndex(bindings []Binding) *index {
	ix := &index{all: slices.Clone(bindings), byType: map[ResourceType]*typeIndex{}}
	for _, b := range ix.all {
		b.Host = canonicalHost(b.Host) // ix.all keeps the host as given
		ti := ix.byType[b.ResourceType]
		if ti == nil {
			ti = &typeIndex{literal: map[string][]Binding{}, prefixed: map[string][]Binding{}}
			ix.byType[b.ResourceType] = ti
		}
		ti.all = append(ti.all, b)
		switch b.PatternType {
		case PatternLiteral:
			ti.literal[b.ResourceName] = append(ti.literal[b.ResourceName], b)
		case PatternPrefixed:
			if len(ti.prefixed[b.ResourceName]) == 0 {
				ti.prefixLens = append(ti.prefixLens, len(b.ResourceName))
			}
			ti.prefixed[b.ResourceName] = append(ti.prefixed[b.ResourceName], b)
		}
	}
	for _, ti := range ix.byType {
		slices.Sort(ti.prefixLens)
		ti.prefixLens = slices.Compact(ti.prefixLens)
	}
	return ix
}

// decide is StandardAuthorizerData.findAclRule: DENY wins, then ALLOW,
// then the default for a resource without ACLs; a resource with ACLs,
// none of which allows, is denied.
func (ix *index) decide(principal, host string, op Operation, rt ResourceType, name string, allowIfNoACL bool) bool {
	ti := ix.byType[rt]
	if ti == nil {
		return allowIfNoACL
	}
	found, allowed := false, false
	check := func(acls []Binding) (denied bool) {
		for _, b := range acls {
			found = true
			switch applies(b, principal, host, op) {
			case PermissionDeny:
				return true
			case PermissionAllow:
				allowed = true
			}
		}
		return false
	}
	if check(ti.literal[name]) {
		return false
	}
	if name != Wildcard && check(ti.literal[Wildcard]) {
		return false
	}
	for _, n := range ti.prefixLens {
		if n > len(name) {
			break
		}
		if check(ti.prefixed[name[:n]]) {
			return false
		}
	}
	if !found {
		return allowIfNoACL
	}
	return allowed
}

// applies is StandardAuthorizerData.findResult for an ACL whose pattern
// matches: its permission if principal, host and operation apply, else
// PermissionUnknown. Implied operations widen ALLOW ACLs only: a DENY of
// READ does not deny DESCRIBE.
func applies(b Binding, principal, host string, op Operation) Permission {
	if b.Principal != principal && b.Principal != WildcardPrincipal {
		return PermissionUnknown
	}
	if b.Host != Wildcard && b.Host != host {
		return PermissionUnknown
	}
	if b.Operation != OpAll && b.Operation != op {
		if b.Permission != PermissionAllow || !implies(b.Operation, op) {
			return PermissionUnknown
		}
	}
	return b.Permission
}

// implies reports whether an ALLOW of granted also allows op.
func implies(granted, op Operation) bool {
	switch op {
	case OpDescribe:
		return granted == OpRead || granted == OpWrite || granted == OpDelete || granted == OpAlter
	case OpDescribeConfigs:
		return granted == OpAlterConfigs
	}
	return false
}
