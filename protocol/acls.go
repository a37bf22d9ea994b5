package protocol

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// The ACL APIs' wire shapes to and from internal/acl (the codes are the
// same: both are Kafka's enums).

// CreationBinding is the ACL a CreateAcls creation asks for.
func CreationBinding(c kmsg.CreateACLsRequestCreation) acl.Binding {
	return acl.Binding{
		ResourceType: acl.ResourceType(c.ResourceType),
		ResourceName: c.ResourceName,
		PatternType:  acl.PatternType(c.ResourcePatternType),
		Principal:    c.Principal,
		Host:         c.Host,
		Operation:    acl.Operation(c.Operation),
		Permission:   acl.Permission(c.PermissionType),
	}
}

// BindingCreation is CreationBinding's inverse.
func BindingCreation(b acl.Binding) kmsg.CreateACLsRequestCreation {
	c := kmsg.NewCreateACLsRequestCreation()
	c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceType(b.ResourceType), b.ResourceName, kmsg.ACLResourcePatternType(b.PatternType)
	c.Principal, c.Host = b.Principal, b.Host
	c.Operation, c.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
	return c
}

// DescribeFilter is the filter of a DescribeAcls request.
func DescribeFilter(r *kmsg.DescribeACLsRequest) acl.Filter {
	return acl.Filter{
		ResourceType: acl.ResourceType(r.ResourceType),
		ResourceName: r.ResourceName,
		PatternType:  acl.PatternType(r.ResourcePatternType),
		Principal:    r.Principal,
		Host:         r.Host,
		Operation:    acl.Operation(r.Operation),
		Permission:   acl.Permission(r.PermissionType),
	}
}

// DeletionFilter is one filter of a DeleteAcls request.
func DeletionFilter(f kmsg.DeleteACLsRequestFilter) acl.Filter {
	return acl.Filter{
		ResourceType: acl.ResourceType(f.ResourceType),
		ResourceName: f.ResourceName,
		PatternType:  acl.PatternType(f.ResourcePatternType),
		Principal:    f.Principal,
		Host:         f.Host,
		Operation:    acl.Operation(f.Operation),
		Permission:   acl.Permission(f.PermissionType),
	}
}

// FilterDeletion is DeletionFilter's inverse.
func FilterDeletion(f acl.Filter) kmsg.DeleteACLsRequestFilter {
	d := kmsg.NewDeleteACLsRequestFilter()
	d.ResourceType, d.ResourceName, d.ResourcePatternType = kmsg.ACLResourceType(f.ResourceType), f.ResourceName, kmsg.ACLResourcePatternType(f.PatternType)
	d.Principal, d.Host = f.Principal, f.Host
	d.Operation, d.PermissionType = kmsg.ACLOperation(f.Operation), kmsg.ACLPermissionType(f.Permission)
	return d
}

// MatchingACL is a deleted binding as DeleteAcls reports it.
func MatchingACL(b acl.Binding) kmsg.DeleteACLsResponseResultMatchingACL {
	m := kmsg.NewDeleteACLsResponseResultMatchingACL()
	m.ResourceType, m.ResourceName, m.ResourcePatternType = kmsg.ACLResourceType(b.ResourceType), b.ResourceName, kmsg.ACLResourcePatternType(b.PatternType)
	m.Principal, m.Host = b.Principal, b.Host
	m.Operation, m.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
	return m
}

// MatchingBinding is MatchingACL's inverse.
func MatchingBinding(m kmsg.DeleteACLsResponseResultMatchingACL) acl.Binding {
	return acl.Binding{
		ResourceType: acl.ResourceType(m.ResourceType),
		ResourceName: m.ResourceName,
		PatternType:  acl.PatternType(m.ResourcePatternType),
		Principal:    m.Principal,
		Host:         m.Host,
		Operation:    acl.Operation(m.Operation),
		Permission:   acl.Permission(m.PermissionType),
	}
}
