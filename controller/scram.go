package controller

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SCRAM credentials in the metadata log, as Kafka's ScramControlManager
// keeps them (KIP-554): UserScramCredential records set one user's
// credential for one mechanism, RemoveUserScramCredential ones delete it.
// The password itself never reaches the controller: the client sends a
// salted password, from which StoredKey and ServerKey are derived.

// Metadata record types (Kafka's UserScramCredentialRecord and
// RemoveUserScramCredentialRecord).
const (
	recUserScramCredential       = "UserScramCredential"
	recRemoveUserScramCredential = "RemoveUserScramCredential"
)

// SCRAM mechanism types, as the SCRAM credential APIs number them.
const (
	ScramSHA256 int8 = 1
	ScramSHA512 int8 = 2
)

const (
	scramMinIterations = 4096  // ScramMechanism.minIterations
	scramMaxIterations = 16384 // ScramControlManager.MAX_ITERATIONS
)

// ScramCredentialKey names one credential: a user and a mechanism.
type ScramCredentialKey struct {
	User      string
	Mechanism int8
}

// ScramCredential is what a server needs to verify a SCRAM client
// (Kafka's ScramCredential).
type ScramCredential struct {
	Salt       []byte `json:"salt"`
	StoredKey  []byte `json:"storedKey"`
	ServerKey  []byte `json:"serverKey"`
	Iterations int32  `json:"iterations"`
}

// ScramCredentialRecord is the record body of both record types (the
// remove record carries only the name and mechanism).
type ScramCredentialRecord struct {
	Name       string           `json:"name"`
	Mechanism  int8             `json:"mechanism"`
	Credential *ScramCredential `json:"credential,omitempty"`
}

func scramHash(mechanism int8) func() hash.Hash {
	switch mechanism {
	case ScramSHA256:
		return sha256.New
	case ScramSHA512:
		return sha512.New
	}
	return nil
}

// NewScramCredential derives the stored credential from a salted password
// (ScramFormatter: StoredKey = H(HMAC(salted, "Client Key")), ServerKey =
// HMAC(salted, "Server Key")).
func NewScramCredential(mechanism int8, saltedPassword, salt []byte, iterations int32) (ScramCredential, error) {
	h := scramHash(mechanism)
	if h == nil {
		return ScramCredential{}, fmt.Errorf("unknown SCRAM mechanism %d", mechanism)
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(h, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	d := h()
	d.Write(mac(saltedPassword, "Client Key"))
	return ScramCredential{
		Salt:       bytes.Clone(salt),
		StoredKey:  d.Sum(nil),
		ServerKey:  mac(saltedPassword, "Server Key"),
		Iterations: iterations,
	}, nil
}

// ScramAlteration is what an AlterUserScramCredentials request changes:
// credentials to set and to delete, and the per-user results.
type ScramAlteration struct {
	Upserts map[ScramCredentialKey]ScramCredential
	Deletes []ScramCredentialKey
	Results []kmsg.AlterUserSCRAMCredentialsResponseResult
}

// PlanScramAlteration validates a request against the existing
// credentials as ScramControlManager.alterCredentials does: a user named
// twice fails with DUPLICATE_RESOURCE, an empty name or too few/many
// iterations with UNACCEPTABLE_CREDENTIAL, an unknown mechanism with
// UNSUPPORTED_SASL_MECHANISM, deleting a missing credential with
// RESOURCE_NOT_FOUND; every other user's change applies.
func PlanScramAlteration(req *kmsg.AlterUserSCRAMCredentialsRequest, exists func(ScramCredentialKey) bool) ScramAlteration {
	type failure struct {
		code int16
		msg  string
	}
	failed := map[string]failure{}
	deletions := map[string]kmsg.AlterUserSCRAMCredentialsRequestDeletion{}
	upsertions := map[string]kmsg.AlterUserSCRAMCredentialsRequestUpsertion{}
	var order []string
	seen := func(name string) {
		if !slices.Contains(order, name) {
			order = append(order, name)
		}
	}
	duplicate := failure{kerr.DuplicateResource.Code, "A user credential cannot be altered twice in the same request"}
	validate := func(name string, mechanism int8) (failure, bool) {
		if name == "" {
			return failure{kerr.UnacceptableCredential.Code, "Username must not be empty"}, false
		}
		if scramHash(mechanism) == nil {
			return failure{kerr.UnsupportedSaslMechanism.Code, "Unknown SCRAM mechanism"}, false
		}
		return failure{}, true
	}
	for _, d := range req.Deletions {
		seen(d.Name)
		if _, ok := failed[d.Name]; ok {
			continue
		}
		if _, dup := deletions[d.Name]; dup {
			delete(deletions, d.Name)
			failed[d.Name] = duplicate
			continue
		}
		if f, ok := validate(d.Name, d.Mechanism); !ok {
			failed[d.Name] = f
		} else if !exists(ScramCredentialKey{d.Name, d.Mechanism}) {
			failed[d.Name] = failure{kerr.ResourceNotFound.Code, "Attempt to delete a user credential that does not exist"}
		} else {
			deletions[d.Name] = d
		}
	}
	for _, u := range req.Upsertions {
		seen(u.Name)
		if _, ok := failed[u.Name]; ok {
			continue
		}
		_, dupD := deletions[u.Name]
		_, dupU := upsertions[u.Name]
		if dupD || dupU {
			delete(deletions, u.Name)
			delete(upsertions, u.Name)
			failed[u.Name] = duplicate
			continue
		}
		if f, ok := validate(u.Name, u.Mechanism); !ok {
			failed[u.Name] = f
		} else if u.Iterations < scramMinIterations {
			failed[u.Name] = failure{kerr.UnacceptableCredential.Code, "Too few iterations"}
		} else if u.Iterations > scramMaxIterations {
			failed[u.Name] = failure{kerr.UnacceptableCredential.Code, "Too many iterations"}
		} else {
			upsertions[u.Name] = u
		}
	}
	a := ScramAlteration{Upserts: map[ScramCredentialKey]ScramCredential{}}
	for _, name := range order {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User = name
		if f, ok := failed[name]; ok {
			r.ErrorCode, r.ErrorMessage = f.code, kmsg.StringPtr(f.msg)
		} else if d, ok := deletions[name]; ok {
			a.Deletes = append(a.Deletes, ScramCredentialKey{d.Name, d.Mechanism})
		} else if u, ok := upsertions[name]; ok {
			cred, err := NewScramCredential(u.Mechanism, u.SaltedPassword, u.Salt, u.Iterations)
			if err != nil {
				r.ErrorCode, r.ErrorMessage = kerr.UnknownServerError.Code, kmsg.StringPtr(err.Error())
			} else {
				a.Upserts[ScramCredentialKey{u.Name, u.Mechanism}] = cred
			}
		}
		a.Results = append(a.Results, r)
	}
	return a
}

// AlterUserScramCredentials: v0, at the active controller. The changes of
// one request commit in one entry (Kafka's ControllerResult.atomicOf).
func (c *Controller) handleAlterUserScramCredentials(req *kmsg.AlterUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	var plan ScramAlteration
	off, err := c.write(func(img *Image) ([]record, error) {
		plan = PlanScramAlteration(req, func(k ScramCredentialKey) bool { _, ok := img.ScramCredentials[k]; return ok })
		var recs []record
		for _, k := range plan.Deletes {
			recs = append(recs, record{Type: recRemoveUserScramCredential, Scram: &ScramCredentialRecord{Name: k.User, Mechanism: k.Mechanism}})
		}
		keys := slices.SortedFunc(maps.Keys(plan.Upserts), func(a, b ScramCredentialKey) int {
			if a.User != b.User {
				return cmpString(a.User, b.User)
			}
			return int(a.Mechanism) - int(b.Mechanism)
		})
		for _, k := range keys {
			cred := plan.Upserts[k]
			recs = append(recs, record{Type: recUserScramCredential, Scram: &ScramCredentialRecord{Name: k.User, Mechanism: k.Mechanism, Credential: &cred}})
		}
		return recs, nil
	})
	if err != nil {
		code, msg := codeMsg(err)
		for _, r := range plan.Results {
			if r.ErrorCode == 0 {
				r.ErrorCode, r.ErrorMessage = code, msg
			}
			resp.Results = append(resp.Results, r)
		}
		if plan.Results == nil { // not the controller: every user fails alike
			for _, name := range scramRequestUsers(req) {
				resp.Results = append(resp.Results, kmsg.AlterUserSCRAMCredentialsResponseResult{User: name, ErrorCode: code, ErrorMessage: msg})
			}
		}
		return resp
	}
	resp.Results = plan.Results
	setOffsetTag(&resp.UnknownTags, off)
	return resp
}

func scramRequestUsers(req *kmsg.AlterUserSCRAMCredentialsRequest) []string {
	var names []string
	for _, d := range req.Deletions {
		if !slices.Contains(names, d.Name) {
			names = append(names, d.Name)
		}
	}
	for _, u := range req.Upsertions {
		if !slices.Contains(names, u.Name) {
			names = append(names, u.Name)
		}
	}
	return names
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// AlterUserScramCredentials sends the request to the active controller and
// returns once this node's image has the change.
func (c *Controller) AlterUserScramCredentials(ctx context.Context, req *kmsg.AlterUserSCRAMCredentialsRequest) (*kmsg.AlterUserSCRAMCredentialsResponse, error) {
	kresp, err := c.route(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.AlterUserSCRAMCredentialsResponse)
	if _, err := c.waitApplied(ctx, offsetFromTags(&resp.UnknownTags)); err != nil {
		return nil, err
	}
	resp.UnknownTags = kmsg.Tags{}
	return resp, nil
}

// checkScramRecord is record.check for the SCRAM records.
func (r *record) checkScramRecord() error {
	if r.Scram == nil || r.Scram.Name == "" || scramHash(r.Scram.Mechanism) == nil {
		return errors.New("no SCRAM user and mechanism")
	}
	if r.Type == recUserScramCredential && r.Scram.Credential == nil {
		return errors.New("no SCRAM credential")
	}
	return nil
}

// applyScramRecord is applyRecord for the SCRAM records. The image's map
// is copied on first write in an entry.
func (n *Image) applyScramRecord(r record, copied *bool) error {
	if !*copied {
		n.ScramCredentials = maps.Clone(n.ScramCredentials)
		if n.ScramCredentials == nil {
			n.ScramCredentials = map[ScramCredentialKey]ScramCredential{}
		}
		*copied = true
	}
	k := ScramCredentialKey{r.Scram.Name, r.Scram.Mechanism}
	if r.Type == recRemoveUserScramCredential {
		if _, ok := n.ScramCredentials[k]; !ok {
			return fmt.Errorf("no SCRAM credential for %s (mechanism %d) to remove", k.User, k.Mechanism)
		}
		delete(n.ScramCredentials, k)
		return nil
	}
	n.ScramCredentials[k] = *r.Scram.Credential
	return nil
}

// scramSnapshot lists the image's credentials in a stable order.
func (img *Image) scramSnapshot() []ScramCredentialRecord {
	var out []ScramCredentialRecord
	for k, v := range img.ScramCredentials {
		cred := v
		out = append(out, ScramCredentialRecord{Name: k.User, Mechanism: k.Mechanism, Credential: &cred})
	}
	slices.SortFunc(out, func(a, b ScramCredentialRecord) int {
		if a.Name != b.Name {
			return cmpString(a.Name, b.Name)
		}
		return int(a.Mechanism) - int(b.Mechanism)
	})
	return out
}

func restoreScram(img *Image, recs []ScramCredentialRecord) error {
	for _, r := range recs {
		rec := record{Type: recUserScramCredential, Scram: &r}
		if err := rec.checkScramRecord(); err != nil {
			return fmt.Errorf("%w: snapshot: %v", ErrCorruptRecord, err)
		}
		k := ScramCredentialKey{r.Name, r.Mechanism}
		if _, dup := img.ScramCredentials[k]; dup {
			return fmt.Errorf("%w: snapshot: SCRAM credential for %s twice", ErrCorruptRecord, r.Name)
		}
		img.ScramCredentials[k] = *r.Credential
	}
	return nil
}
