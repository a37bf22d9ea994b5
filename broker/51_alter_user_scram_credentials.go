package broker

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/protocol"
)

// AlterUserScramCredentials: v0
//
// Behavior:
// * KIP-554: the client sends the salted password, salt and iterations;
//   the broker stores salt, StoredKey, ServerKey and iterations (never a
//   password), durably: in meta.db on a single node, in the replicated
//   metadata (UserScramCredential records) in a cluster.
// * Validation is ScramControlManager's (controller.PlanScramAlteration):
//   DUPLICATE_RESOURCE for a user altered twice, UNACCEPTABLE_CREDENTIAL
//   for an empty name or iterations outside [4096, 16384],
//   UNSUPPORTED_SASL_MECHANISM for an unknown mechanism,
//   RESOURCE_NOT_FOUND for deleting a missing credential.
// * The changes of one request are atomic; established sessions keep
//   their authentication.
//
// With an authorizer: ALTER on the cluster, else
// CLUSTER_AUTHORIZATION_FAILED for every user.

func (s *Server) handleAlterUserScramCredentials(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.AlterUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var results []kmsg.AlterUserSCRAMCredentialsResponseResult
	err := error(kerr.ClusterAuthorizationFailed)
	if s.authorizeCluster(creq, acl.OpAlter) {
		results, err = s.alterScramCredentials(ctx, req)
	}
	if err != nil {
		code := protocol.ErrorCode(err)
		msg := kmsg.StringPtr(err.Error())
		seen := map[string]bool{}
		add := func(name string) {
			if !seen[name] {
				seen[name] = true
				resp.Results = append(resp.Results, kmsg.AlterUserSCRAMCredentialsResponseResult{User: name, ErrorCode: code, ErrorMessage: msg})
			}
		}
		for _, d := range req.Deletions {
			add(d.Name)
		}
		for _, u := range req.Upsertions {
			add(u.Name)
		}
		return resp, nil
	}
	resp.Results = results
	return resp, nil
}
