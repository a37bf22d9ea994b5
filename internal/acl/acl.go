// Package acl is Kafka's access-control model without the broker around
// it: ACL bindings and filters (Kafka's AclBinding, AclBindingFilter,
// ResourcePatternFilter, AccessControlEntryFilter), their validation, and
// an Authorizer deciding as Kafka's StandardAuthorizer does:
//
//   - super users (super.users) may do anything;
//   - otherwise the ACLs whose pattern matches the resource decide: a
//     LITERAL pattern of the same name, the LITERAL wildcard "*", or a
//     PREFIXED pattern the name starts with;
//   - an ACL applies when its principal is the caller's or User:*, its host
//     the caller's address or "*", and its operation the requested one or
//     ALL, or, for ALLOW ACLs only, one that implies it (READ, WRITE,
//     DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//     DESCRIBE_CONFIGS);
//   - a DENY that applies wins; else an ALLOW that applies allows; else,
//     when no ACL at all matches the resource, allow.everyone.if.no.acl.found
//     decides; otherwise the answer is no.
//
// Codes are the wire values of Kafka's enums (kmsg's ACLResourceType, ...).
// The package imports nothing of kbroker.
package acl

import (
	"errors"
	"fmt"
	"strings"
)

// ResourceType is Kafka's ResourceType.
type ResourceType int8

const (
	ResourceUnknown         ResourceType = 0
	ResourceAny             ResourceType = 1 // filters only
	ResourceTopic           ResourceType = 2
	ResourceGroup           ResourceType = 3
	ResourceCluster         ResourceType = 4
	ResourceTransactionalID ResourceType = 5
	ResourceDelegationToken ResourceType = 6
	ResourceUser            ResourceType = 7
)

var resourceTypeNames = map[ResourceType]string{
	ResourceUnknown: "UNKNOWN", ResourceAny: "ANY", ResourceTopic: "TOPIC", ResourceGroup: "GROUP",
	ResourceCluster: "CLUSTER", ResourceTransactionalID: "TRANSACTIONAL_ID",
	ResourceDelegationToken: "DELEGATION_TOKEN", ResourceUser: "USER",
}

func (t ResourceType) String() string { return name(resourceTypeNames, t) }

// PatternType is Kafka's PatternType.
type PatternType int8

const (
	PatternUnknown  PatternType = 0
	PatternAny      PatternType = 1 // filters: any pattern type, names compared exactly
	PatternMatch    PatternType = 2 // filters: patterns that would match the name
	PatternLiteral  PatternType = 3
	PatternPrefixed PatternType = 4
)

var patternTypeNames = map[PatternType]string{
	PatternUnknown: "UNKNOWN", PatternAny: "ANY", PatternMatch: "MATCH", PatternLiteral: "LITERAL", PatternPrefixed: "PREFIXED",
}

func (t PatternType) String() string { return name(patternTypeNames, t) }

// Operation is Kafka's AclOperation.
type Operation int8

const (
	OpUnknown         Operation = 0
	OpAny             Operation = 1 // filters only
	OpAll             Operation = 2
	OpRead            Operation = 3
	OpWrite           Operation = 4
	OpCreate          Operation = 5
	OpDelete          Operation = 6
	OpAlter           Operation = 7
	OpDescribe        Operation = 8
	OpClusterAction   Operation = 9
	OpDescribeConfigs Operation = 10
	OpAlterConfigs    Operation = 11
	OpIdempotentWrite Operation = 12
	OpCreateTokens    Operation = 13
	OpDescribeTokens  Operation = 14
	OpTwoPhaseCommit  Operation = 15
)

var operationNames = map[Operation]string{
	OpUnknown: "UNKNOWN", OpAny: "ANY", OpAll: "ALL", OpRead: "READ", OpWrite: "WRITE", OpCreate: "CREATE",
	OpDelete: "DELETE", OpAlter: "ALTER", OpDescribe: "DESCRIBE", OpClusterAction: "CLUSTER_ACTION",
	OpDescribeConfigs: "DESCRIBE_CONFIGS", OpAlterConfigs: "ALTER_CONFIGS", OpIdempotentWrite: "IDEMPOTENT_WRITE",
	OpCreateTokens: "CREATE_TOKENS", OpDescribeTokens: "DESCRIBE_TOKENS", OpTwoPhaseCommit: "TWO_PHASE_COMMIT",
}

func (o Operation) String() string { return name(operationNames, o) }

// Permission is Kafka's AclPermissionType.
type Permission int8

const (
	PermissionUnknown Permission = 0
	PermissionAny     Permission = 1 // filters only
	PermissionDeny    Permission = 2
	PermissionAllow   Permission = 3
)

var permissionNames = map[Permission]string{
	PermissionUnknown: "UNKNOWN", PermissionAny: "ANY", PermissionDeny: "DENY", PermissionAllow: "ALLOW",
}

func (p Permission) String() string { return name(permissionNames, p) }

func name[K ~int8](names map[K]string, k K) string {
	if n, ok := names[k]; ok {
		return n
	}
	return fmt.Sprintf("UNKNOWN(%d)", int8(k))
}

// Wildcard is the LITERAL resource name matching every resource of its
// type, and the host matching every host.
const Wildcard = "*"

// WildcardPrincipal matches every principal (Kafka's
// WILDCARD_KAFKA_PRINCIPAL).
const WildcardPrincipal = "User:*"

// ClusterName is the one name of the CLUSTER resource.
const ClusterName = "kafka-cluster"

// Binding is one ACL: a resource pattern and an access control entry
// (Kafka's AclBinding, flattened).
type Binding struct {
	ResourceType ResourceType `json:"resourceType"`
	ResourceName string       `json:"resourceName"`
	PatternType  PatternType  `json:"patternType"`
	Principal    string       `json:"principal"` // Type:Name
	Host         string       `json:"host"`
	Operation    Operation    `json:"operation"`
	Permission   Permission   `json:"permission"`
}

func (b Binding) String() string {
	return fmt.Sprintf("(pattern=%s:%s:%s, principal=%s, host=%s, operation=%s, permission=%s)",
		b.ResourceType, b.PatternType, b.ResourceName, b.Principal, b.Host, b.Operation, b.Permission)
}

// ErrInvalid marks a binding or filter a request may not carry; Kafka
// answers these with INVALID_REQUEST.
var ErrInvalid = errors.New("acl: invalid")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate checks a binding to be created as Kafka's broker and
// AclControlManager do: concrete (no ANY, MATCH or UNKNOWN) values, a
// non-empty name, "kafka-cluster" as the only CLUSTER name, a Type:Name
// principal and a host.
func (b Binding) Validate() error {
	switch b.ResourceType {
	case ResourceTopic, ResourceGroup, ResourceCluster, ResourceTransactionalID, ResourceDelegationToken, ResourceUser:
	default:
		return invalid("invalid resource type %s", b.ResourceType)
	}
	switch b.PatternType {
	case PatternLiteral, PatternPrefixed:
	default:
		return invalid("invalid pattern type %s", b.PatternType)
	}
	if b.ResourceName == "" {
		return invalid("resource name should not be empty")
	}
	if b.ResourceType == ResourceCluster && b.ResourceName != ClusterName {
		return invalid("the only valid name for the CLUSTER resource is %s", ClusterName)
	}
	if _, ok := operationNames[b.Operation]; !ok || b.Operation == OpAny || b.Operation == OpUnknown {
		return invalid("invalid operation %s", b.Operation)
	}
	if b.Permission != PermissionAllow && b.Permission != PermissionDeny {
		return invalid("invalid permission type %s", b.Permission)
	}
	if typ, nm, ok := strings.Cut(b.Principal, ":"); !ok || typ == "" || nm == "" {
		return invalid("could not parse principal from %q (want Type:Name)", b.Principal)
	}
	if b.Host == "" {
		return invalid("host should not be empty")
	}
	return nil
}

// Filter selects bindings (Kafka's AclBindingFilter): a nil string or an
// ANY value matches anything.
type Filter struct {
	ResourceType ResourceType
	ResourceName *string
	PatternType  PatternType
	Principal    *string
	Host         *string
	Operation    Operation
	Permission   Permission
}

// Validate refuses a filter with an UNKNOWN (or out of range) value, which
// Kafka answers with INVALID_REQUEST.
func (f Filter) Validate() error {
	if _, ok := resourceTypeNames[f.ResourceType]; !ok || f.ResourceType == ResourceUnknown {
		return invalid("filter has an unknown resource type")
	}
	if _, ok := patternTypeNames[f.PatternType]; !ok || f.PatternType == PatternUnknown {
		return invalid("filter has an unknown pattern type")
	}
	if _, ok := operationNames[f.Operation]; !ok || f.Operation == OpUnknown {
		return invalid("filter has an unknown operation")
	}
	if _, ok := permissionNames[f.Permission]; !ok || f.Permission == PermissionUnknown {
		return invalid("filter has an unknown permission type")
	}
	return nil
}

// Matches reports whether the filter selects b (Kafka's
// ResourcePatternFilter.matches and AccessControlEntryFilter.matches).
func (f Filter) Matches(b Binding) bool {
	return f.matchesPattern(b) &&
		(f.Principal == nil || *f.Principal == b.Principal) &&
		(f.Host == nil || *f.Host == b.Host) &&
		(f.Operation == OpAny || f.Operation == b.Operation) &&
		(f.Permission == PermissionAny || f.Permission == b.Permission)
}

func (f Filter) matchesPattern(b Binding) bool {
	if f.ResourceType != ResourceAny && f.ResourceType != b.ResourceType {
		return false
	}
	if f.PatternType != PatternAny && f.PatternType != PatternMatch && f.PatternType != b.PatternType {
		return false
	}
	if f.ResourceName == nil {
		return true
	}
	n := *f.ResourceName
	if f.PatternType == PatternAny || f.PatternType == b.PatternType {
		return n == b.ResourceName
	}
	// MATCH: the patterns that would match a resource named n.
	switch b.PatternType {
	case PatternLiteral:
		return n == b.ResourceName || b.ResourceName == Wildcard
	case PatternPrefixed:
		return strings.HasPrefix(n, b.ResourceName)
	}
	return false
}

// SupportedOperations are the operations that mean something for each
// resource type (Kafka's AclEntry.supportedOperations), in code order: what
// the authorized-operations bitfields are computed over.
var SupportedOperations = map[ResourceType][]Operation{
	ResourceTopic:           {OpRead, OpWrite, OpCreate, OpDelete, OpAlter, OpDescribe, OpDescribeConfigs, OpAlterConfigs},
	ResourceGroup:           {OpRead, OpDelete, OpDescribe, OpDescribeConfigs, OpAlterConfigs},
	ResourceCluster:         {OpCreate, OpAlter, OpDescribe, OpClusterAction, OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite},
	ResourceTransactionalID: {OpWrite, OpDescribe, OpTwoPhaseCommit},
	ResourceDelegationToken: {OpDescribe},
	ResourceUser:            {OpCreateTokens, OpDescribeTokens},
}

// OperationsBitField packs operations as Kafka's Utils.to32BitField does:
// bit n set for operation code n.
func OperationsBitField(ops []Operation) int32 {
	var f int32
	for _, op := range ops {
		f |= 1 << uint(op)
	}
	return f
}
