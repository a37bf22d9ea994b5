package broker

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/internal/acl"
)

// DescribeUserScramCredentials: v0
//
// Behavior:
// * No users (null or empty list): every user that has a credential, each
//   with its mechanisms and iterations (never salts or keys).
// * A named user without credentials: RESOURCE_NOT_FOUND; a user named
//   twice: DUPLICATE_RESOURCE, as Kafka's broker answers.
// * Authorization is left to the ACL checks (DESCRIBE on the cluster).
//
// With an authorizer: DESCRIBE on the cluster, else
// CLUSTER_AUTHORIZATION_FAILED.

func (s *Server) handleDescribeUserScramCredentials(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.DescribeUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !s.authorizeCluster(creq, acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	byUser := map[string][]kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo{}
	for k, c := range s.scramCredentials() {
		byUser[k.User] = append(byUser[k.User], kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo{Mechanism: k.Mechanism, Iterations: c.Iterations})
	}
	result := func(user string) kmsg.DescribeUserSCRAMCredentialsResponseResult {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = user
		r.CredentialInfos = byUser[user]
		slices.SortFunc(r.CredentialInfos, func(a, b kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo) int {
			return int(a.Mechanism) - int(b.Mechanism)
		})
		return r
	}
	if len(req.Users) == 0 {
		users := make([]string, 0, len(byUser))
		for u := range byUser {
			users = append(users, u)
		}
		slices.Sort(users)
		for _, u := range users {
			resp.Results = append(resp.Results, result(u))
		}
		return resp, nil
	}
	count := map[string]int{}
	for _, u := range req.Users {
		count[u.Name]++
	}
	done := map[string]bool{}
	for _, u := range req.Users {
		if done[u.Name] {
			continue
		}
		done[u.Name] = true
		r := result(u.Name)
		switch {
		case count[u.Name] > 1:
			r.CredentialInfos = nil
			r.ErrorCode = kerr.DuplicateResource.Code
			r.ErrorMessage = kmsg.StringPtr("Cannot describe SCRAM credentials for the same user twice in a single request: " + u.Name)
		case len(r.CredentialInfos) == 0:
			r.ErrorCode = kerr.ResourceNotFound.Code
			r.ErrorMessage = kmsg.StringPtr("Attempt to describe a user credential that does not exist: " + u.Name)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}
