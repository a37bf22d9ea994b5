package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
)

// DeleteAcls: v1-3
//
// Behavior (AclApis.handleDeleteAcls, AclControlManager.deleteAcls):
// * ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED for every
//   filter; without an authorizer SECURITY_DISABLED.
// * A filter with an UNKNOWN value fails alone with INVALID_REQUEST.
// * Each filter's result lists the ACLs it matched, all removed durably
//   before the answer.
// * A request that would remove more than controller.MaxRecordsPerUserOp
//   ACLs removes none: every valid filter gets POLICY_VIOLATION "Unable to
//   perform excessively large batch operation.", as from Kafka's
//   controller.
//
// Version notes:
// * v1: ResourcePatternType (KIP-290); v0 is gone in Kafka 4 (KIP-896)
// * v2: flexible
// * v3: USER resources (KIP-554)

func (s *Server) handleDeleteACLs(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DeleteACLsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
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
	var valid []acl.Filter
	var at []int
	for i, rf := range req.Filters {
		f := protocol.DeletionFilter(rf)
		if err := f.Validate(); err != nil {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr(err.Error())
			continue
		}
		valid = append(valid, f)
		at = append(at, i)
	}
	if len(valid) == 0 {
		return resp, nil
	}
	deleted, err := s.deleteACLs(valid)
	if err != nil {
		s.logger.Warn("DeleteAcls failed", "err", err)
		fail(protocol.ErrorCode(err), kmsg.StringPtr(err.Error()))
		return resp, nil
	}
	for j, bs := range deleted {
		for _, b := range bs {
			resp.Results[at[j]].MatchingACLs = append(resp.Results[at[j]].MatchingACLs, protocol.MatchingACL(b))
		}
	}
	return resp, nil
}
