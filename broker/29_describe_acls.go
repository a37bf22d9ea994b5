package broker

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
)

// DescribeAcls: v1-3
//
// Behavior (AclApis.handleDescribeAcls):
// * DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED; without an
//   authorizer SECURITY_DISABLED.
// * A filter with an UNKNOWN value is INVALID_REQUEST.
// * The ACLs the filter matches, grouped by resource pattern.
//
// Version notes:
// * v1: ResourcePatternType (KIP-290); v0 is gone in Kafka 4 (KIP-896)
// * v2: flexible
// * v3: USER resources (KIP-554)

func (s *Server) handleDescribeACLs(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DescribeACLsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	f := protocol.DescribeFilter(req)
	switch err := f.Validate(); {
	case !s.authorizeCluster(creq, acl.OpDescribe):
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
	case s.authz == nil:
		resp.ErrorCode, resp.ErrorMessage = kerr.SecurityDisabled.Code, kmsg.StringPtr("No Authorizer is configured.")
	case err != nil:
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr(err.Error())
	default:
		resp.Resources = describeACLsResources(s.authz.ACLs(f))
	}
	return resp, nil
}

// describeACLsResources groups bindings by resource pattern, in a stable
// order.
func describeACLsResources(bindings []acl.Binding) []kmsg.DescribeACLsResponseResource {
	slices.SortFunc(bindings, func(a, b acl.Binding) int {
		return cmp.Or(cmp.Compare(a.ResourceType, b.ResourceType), cmp.Compare(a.PatternType, b.PatternType),
			cmp.Compare(a.ResourceName, b.ResourceName), cmp.Compare(a.Principal, b.Principal), cmp.Compare(a.Host, b.Host),
			cmp.Compare(a.Operation, b.Operation), cmp.Compare(a.Permission, b.Permission))
	})
	var out []kmsg.DescribeACLsResponseResource
	for _, b := range bindings {
		n := len(out)
		if n == 0 || out[n-1].ResourceType != kmsg.ACLResourceType(b.ResourceType) || out[n-1].ResourceName != b.ResourceName ||
			out[n-1].ResourcePatternType != kmsg.ACLResourcePatternType(b.PatternType) {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = kmsg.ACLResourceType(b.ResourceType), b.ResourceName, kmsg.ACLResourcePatternType(b.PatternType)
			out = append(out, r)
			n++
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host = b.Principal, b.Host
		a.Operation, a.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
		out[n-1].ACLs = append(out[n-1].ACLs, a)
	}
	return out
}
