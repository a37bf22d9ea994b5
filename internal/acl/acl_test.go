package acl

import (
	"errors"
	"testing"
)

func allow(rt ResourceType, pt PatternType, name, principal, host string, op Operation) Binding {
	return Binding{rt, name, pt, principal, host, op, PermissionAllow}
}

func deny(rt ResourceType, pt PatternType, name, principal, host string, op Operation) Binding {
	return Binding{rt, name, pt, principal, host, op, PermissionDeny}
}

const (
	alice = "User:alice"
	bob   = "User:bob"
	h1    = "10.0.0.1"
	h2    = "10.0.0.2"
)

// TestAuthorize follows StandardAuthorizerTest's cases: literal, prefixed
// and wildcard patterns, DENY over ALLOW, implied operations (ALLOW only),
// principal and host wildcards, and the default for resources without ACLs.
func TestAuthorize(t *testing.T) {
	t.Parallel()
	type q struct {
		principal, host string
		op              Operation
		rt              ResourceType
		name            string
		want            bool
	}
	for _, tc := range []struct {
		name    string
		acls    []Binding
		super   []string
		allowNA bool
		checks  []q
	}{
		{"no acls, default deny", nil, nil, false, []q{
			{alice, h1, OpRead, ResourceTopic, "t", false},
		}},
		{"no acls, allow.everyone.if.no.acl.found", nil, nil, true, []q{
			{alice, h1, OpRead, ResourceTopic, "t", true},
		}},
		{"acls elsewhere leave a resource without acls to the default", []Binding{
			allow(ResourceTopic, PatternLiteral, "other", alice, "*", OpRead),
		}, nil, true, []q{
			{bob, h1, OpRead, ResourceTopic, "t", true},
			{bob, h1, OpRead, ResourceTopic, "other", false}, // it has acls, none for bob
		}},
		{"literal", []Binding{allow(ResourceTopic, PatternLiteral, "foo", alice, "*", OpRead)}, nil, false, []q{
			{alice, h1, OpRead, ResourceTopic, "foo", true},
			{alice, h1, OpRead, ResourceTopic, "foobar", false},
			{alice, h1, OpWrite, ResourceTopic, "foo", false},
			{bob, h1, OpRead, ResourceTopic, "foo", false},
			{alice, h1, OpRead, ResourceGroup, "foo", false},
		}},
		{"prefixed", []Binding{allow(ResourceTopic, PatternPrefixed, "foo", alice, "*", OpWrite)}, nil, false, []q{
			{alice, h1, OpWrite, ResourceTopic, "foo", true},
			{alice, h1, OpWrite, ResourceTopic, "foobar", true},
			{alice, h1, OpWrite, ResourceTopic, "fo", false},
			{alice, h1, OpWrite, ResourceTopic, "barfoo", false},
		}},
		{"literal wildcard", []Binding{allow(ResourceGroup, PatternLiteral, "*", alice, "*", OpRead)}, nil, false, []q{
			{alice, h1, OpRead, ResourceGroup, "g1", true},
			{alice, h1, OpRead, ResourceGroup, "*", true},
			{alice, h1, OpRead, ResourceTopic, "g1", false},
		}},
		{"prefixed star is not a wildcard", []Binding{allow(ResourceTopic, PatternPrefixed, "*", alice, "*", OpRead)}, nil, false, []q{
			{alice, h1, OpRead, ResourceTopic, "t", false},
			{alice, h1, OpRead, ResourceTopic, "*x", true},
		}},
		{"deny beats allow", []Binding{
			allow(ResourceTopic, PatternLiteral, "*", alice, "*", OpAll),
			deny(ResourceTopic, PatternPrefixed, "secret", alice, "*", OpRead),
		}, nil, false, []q{
			{alice, h1, OpRead, ResourceTopic, "public", true},
			{alice, h1, OpRead, ResourceTopic, "secret-1", false},
			{alice, h1, OpWrite, ResourceTopic, "secret-1", true},
			// A DENY of READ does not deny DESCRIBE.
			{alice, h1, OpDescribe, ResourceTopic, "secret-1", true},
		}},
		{"deny all", []Binding{
			allow(ResourceTopic, PatternLiteral, "t", alice, "*", OpRead),
			deny(ResourceTopic, PatternLiteral, "t", alice, "*", OpAll),
		}, nil, false, []q{
			{alice, h1, OpRead, ResourceTopic, "t", false},
			{alice, h1, OpDescribe, ResourceTopic, "t", false},
		}},
		{"implied describe", []Binding{
			allow(ResourceTopic, PatternLiteral, "r", alice, "*", OpRead),
			allow(ResourceTopic, PatternLiteral, "w", alice, "*", OpWrite),
			allow(ResourceTopic, PatternLiteral, "d", alice, "*", OpDelete),
			allow(ResourceTopic, PatternLiteral, "a", alice, "*", OpAlter),
			allow(ResourceTopic, PatternLiteral, "c", alice, "*", OpCreate),
			allow(ResourceTopic, PatternLiteral, "ac", alice, "*", OpAlterConfigs),
		}, nil, false, []q{
			{alice, h1, OpDescribe, ResourceTopic, "r", true},
			{alice, h1, OpDescribe, ResourceTopic, "w", true},
			{alice, h1, OpDescribe, ResourceTopic, "d", true},
			{alice, h1, OpDescribe, ResourceTopic, "a", true},
			{alice, h1, OpDescribe, ResourceTopic, "c", false},
			{alice, h1, OpDescribeConfigs, ResourceTopic, "ac", true},
			{alice, h1, OpDescribe, ResourceTopic, "ac", false},
			{alice, h1, OpRead, ResourceTopic, "w", false},
		}},
		{"all allows every operation", []Binding{allow(ResourceCluster, PatternLiteral, ClusterName, alice, "*", OpAll)}, nil, false, []q{
			{alice, h1, OpClusterAction, ResourceCluster, ClusterName, true},
			{alice, h1, OpAlter, ResourceCluster, ClusterName, true},
		}},
		{"wildcard principal", []Binding{allow(ResourceTopic, PatternLiteral, "t", "User:*", "*", OpRead)}, nil, false, []q{
			{alice, h1, OpRead, ResourceTopic, "t", true},
			{bob, h1, OpRead, ResourceTopic, "t", true},
		}},
		{"host match", []Binding{allow(ResourceTopic, PatternLiteral, "t", alice, h1, OpRead)}, nil, false, []q{
			{alice, h1, OpRead, ResourceTopic, "t", true},
			{alice, h2, OpRead, ResourceTopic, "t", false},
		}},
		{"ipv6 hosts compare as addresses", []Binding{allow(ResourceTopic, PatternLiteral, "t", alice, "0:0:0:0:0:0:0:1", OpRead)}, nil, false, []q{
			{alice, "::1", OpRead, ResourceTopic, "t", true},
			{alice, "::2", OpRead, ResourceTopic, "t", false},
		}},
		{"host deny", []Binding{
			allow(ResourceTopic, PatternLiteral, "t", "User:*", "*", OpRead),
			deny(ResourceTopic, PatternLiteral, "t", "User:*", h2, OpRead),
		}, nil, false, []q{
			{alice, h1, OpRead, ResourceTopic, "t", true},
			{alice, h2, OpRead, ResourceTopic, "t", false},
		}},
		{"super users bypass deny", []Binding{deny(ResourceTopic, PatternLiteral, "*", "User:*", "*", OpAll)}, []string{alice}, false, []q{
			{alice, h1, OpWrite, ResourceTopic, "t", true},
			{bob, h1, OpWrite, ResourceTopic, "t", false},
		}},
	} {
		a := New(tc.super, tc.allowNA)
		for _, b := range tc.acls {
			if err := b.Validate(); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		a.SetACLs(tc.acls)
		for _, c := range tc.checks {
			if got := a.Authorize(c.principal, c.host, c.op, c.rt, c.name); got != c.want {
				t.Errorf("%s: Authorize(%s, %s, %s, %s %q) = %v, want %v", tc.name, c.principal, c.host, c.op, c.rt, c.name, got, c.want)
			}
		}
	}
}

func TestAuthorizeByResourceType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		acls []Binding
		want bool
	}{
		{"none", nil, false},
		{"literal allow", []Binding{allow(ResourceTopic, PatternLiteral, "t", alice, "*", OpWrite)}, true},
		{"other op", []Binding{allow(ResourceTopic, PatternLiteral, "t", alice, "*", OpRead)}, false},
		{"literal denied", []Binding{
			allow(ResourceTopic, PatternLiteral, "t", alice, "*", OpWrite),
			deny(ResourceTopic, PatternLiteral, "t", alice, "*", OpWrite),
		}, false},
		{"prefix dominates", []Binding{
			allow(ResourceTopic, PatternPrefixed, "foobar", alice, "*", OpWrite),
			deny(ResourceTopic, PatternPrefixed, "foo", alice, "*", OpWrite),
		}, false},
		{"prefix does not dominate", []Binding{
			allow(ResourceTopic, PatternPrefixed, "fo", alice, "*", OpWrite),
			deny(ResourceTopic, PatternPrefixed, "foo", alice, "*", OpWrite),
		}, true},
		{"wildcard deny", []Binding{
			allow(ResourceTopic, PatternLiteral, "t", alice, "*", OpWrite),
			deny(ResourceTopic, PatternLiteral, "*", alice, "*", OpAll),
		}, false},
		{"wildcard allow", []Binding{allow(ResourceTopic, PatternLiteral, "*", "User:*", "*", OpAll)}, true},
	} {
		a := New(nil, false)
		a.SetACLs(tc.acls)
		if got := a.AuthorizeByResourceType(alice, h1, OpWrite, ResourceTopic); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if !New([]string{alice}, false).AuthorizeByResourceType(alice, h1, OpWrite, ResourceTopic) {
		t.Error("super user refused")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := allow(ResourceTopic, PatternLiteral, "t", alice, "*", OpRead)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Binding){
		"any resource":     func(b *Binding) { b.ResourceType = ResourceAny },
		"unknown resource": func(b *Binding) { b.ResourceType = 42 },
		"match pattern":    func(b *Binding) { b.PatternType = PatternMatch },
		"any pattern":      func(b *Binding) { b.PatternType = PatternAny },
		"empty name":       func(b *Binding) { b.ResourceName = "" },
		"cluster name":     func(b *Binding) { b.ResourceType = ResourceCluster },
		"any operation":    func(b *Binding) { b.Operation = OpAny },
		"unknown op":       func(b *Binding) { b.Operation = 99 },
		"any permission":   func(b *Binding) { b.Permission = PermissionAny },
		"bad principal":    func(b *Binding) { b.Principal = "alice" },
		"empty principal":  func(b *Binding) { b.Principal = "User:" },
		"empty host":       func(b *Binding) { b.Host = "" },
	} {
		b := good
		mut(&b)
		if err := b.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
}

func str(s string) *string { return &s }

// TestFilter follows ResourcePatternFilter and AccessControlEntryFilter:
// ANY/nil match anything, MATCH selects the patterns that match a name.
func TestFilter(t *testing.T) {
	t.Parallel()
	lit := allow(ResourceTopic, PatternLiteral, "foo", alice, "*", OpRead)
	star := allow(ResourceTopic, PatternLiteral, "*", alice, "*", OpRead)
	pre := deny(ResourceTopic, PatternPrefixed, "fo", bob, h1, OpWrite)
	all := []Binding{lit, star, pre}
	anyF := Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}
	for _, tc := range []struct {
		name string
		f    func(f *Filter)
		want []Binding
	}{
		{"any", func(*Filter) {}, all},
		{"exact name, any pattern", func(f *Filter) { f.ResourceName = str("foo") }, []Binding{lit}},
		{"literal only", func(f *Filter) { f.PatternType = PatternLiteral }, []Binding{lit, star}},
		{"match", func(f *Filter) { f.ResourceName, f.PatternType = str("foo"), PatternMatch }, all},
		{"match other", func(f *Filter) { f.ResourceName, f.PatternType = str("bar"), PatternMatch }, []Binding{star}},
		{"prefixed exact", func(f *Filter) { f.ResourceName, f.PatternType = str("fo"), PatternPrefixed }, []Binding{pre}},
		{"principal", func(f *Filter) { f.Principal = str(bob) }, []Binding{pre}},
		{"host", func(f *Filter) { f.Host = str("*") }, []Binding{lit, star}},
		{"operation", func(f *Filter) { f.Operation = OpWrite }, []Binding{pre}},
		{"permission", func(f *Filter) { f.Permission = PermissionAllow }, []Binding{lit, star}},
		{"resource type", func(f *Filter) { f.ResourceType = ResourceGroup }, nil},
	} {
		f := anyF
		tc.f(&f)
		if err := f.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		a := New(nil, false)
		a.SetACLs(all)
		got := a.ACLs(f)
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			}
		}
	}
	for _, bad := range []Filter{
		{ResourceType: ResourceUnknown, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny},
		{ResourceType: ResourceAny, PatternType: PatternUnknown, Operation: OpAny, Permission: PermissionAny},
		{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpUnknown, Permission: PermissionAny},
		{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionUnknown},
		{ResourceType: 100, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestOperationsBitField(t *testing.T) {
	t.Parallel()
	if got := OperationsBitField([]Operation{OpRead, OpDescribe}); got != 1<<3|1<<8 {
		t.Fatalf("got %b", got)
	}
}
