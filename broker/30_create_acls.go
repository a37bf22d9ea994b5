package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
)

// CreateAcls: v1-3
//
// Behavior (AclApis.handleCreateAcls, AclControlManager.createAcls):
// * ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED for every
//   creation; without an authorizer SECURITY_DISABLED.
// * A creation acl.Binding.Validate refuses (ANY, MATCH or UNKNOWN values,
//   an empty name, a CLUSTER not named kafka-cluster, a principal that is
//   not Type:Name) fails alone with INVALID_REQUEST.
// * An ACL that exists already succeeds without a second copy.
// * A request that would add more than controller.MaxRecordsPerUserOp new
//   ACLs adds none: every valid creation gets POLICY_VIOLATION "Unable to
//   perform excessively large batch operation.", as from Kafka's
//   controller.
// * Durable before the answer: meta.db on a single node, the metadata log
//   in a cluster (every node's authorizer follows it).
//
// Version notes:
// * v1: ResourcePatternType (KIP-290); v0 is gone in Kafka 4 (KIP-896)
// * v2: flexible
// * v3: USER resources (KIP-554)

func (s *Server) handleCreateACLs(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.CreateACLsRequest)
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	fail := func(code int16, msg *string) {
		for i := range resp.Results {
			if resp.Results[i].ErrorCode == 0 {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, msg
			}
		}
	}
	if code, msg := s.aclAdminError(creq); code != 0 {
		fail(code, msg)
		return resp, nil
	}
	var valid []acl.Binding
	var at []int // valid[j] is creation at[j]
	for i, c := range req.Creations {
		b := protocol.CreationBinding(c)
		if err := b.Validate(); err != nil {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr(err.Error())
			continue
		}
		valid = append(valid, b)
		at = append(at, i)
	}
	if len(valid) == 0 {
		return resp, nil
	}
	errs, err := s.createACLs(valid)
	if err != nil {
		s.logger.Warn("CreateAcls failed", "err", err)
		fail(protocol.ErrorCode(err), kmsg.StringPtr(err.Error()))
		return resp, nil
	}
	for j, e := range errs {
		if e != nil {
			resp.Results[at[j]].ErrorCode, resp.Results[at[j]].ErrorMessage = protocol.ErrorCode(e), kmsg.StringPtr(e.Error())
		}
	}
	return resp, nil
}

// aclAdminError is what every result of a CreateAcls or DeleteAcls gets
// before any is looked at: CLUSTER_AUTHORIZATION_FAILED without ALTER on
// the cluster, SECURITY_DISABLED without an authorizer to hold ACLs; 0 to
// go on.
func (s *Server) aclAdminError(creq *clientReq) (int16, *string) {
	switch {
	case !s.authorizeCluster(creq, acl.OpAlter):
		return kerr.ClusterAuthorizationFailed.Code, nil
	case s.authz == nil:
		return kerr.SecurityDisabled.Code, kmsg.StringPtr("No Authorizer is configured.")
	}
	return 0, nil
}
