package broker

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/controller"
)

// scramStore is a single node's SCRAM credentials: in memory for
// authentication, written through to meta.db. A cluster reads the
// controller's image instead.
type scramStore struct {
	mu    sync.RWMutex // held across the meta.db write, so alterations are serial
	creds map[controller.ScramCredentialKey]scramCredential
}

func (s *Server) loadScramCredentials() error {
	s.scram = &scramStore{creds: map[controller.ScramCredentialKey]scramCredential{}}
	stored, err := s.logs.Meta().ScramCredentials()
	if err != nil {
		return fmt.Errorf("broker: read SCRAM credentials: %w", err)
	}
	for k, v := range stored {
		m, ok := scramMechanismByName(k[0])
		if !ok {
			continue
		}
		var c scramCredential
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("broker: SCRAM credential of %s (%s): %w", k[1], k[0], err)
		}
		s.scram.creds[controller.ScramCredentialKey{User: k[1], Mechanism: m.typ}] = c
	}
	return nil
}

// scramCredential looks a user's credential up for authentication.
func (s *Server) scramCredential(mechanism, user string) (scramCredential, bool) {
	m, ok := scramMechanismByName(mechanism)
	if !ok {
		return scramCredential{}, false
	}
	k := controller.ScramCredentialKey{User: user, Mechanism: m.typ}
	if s.cluster != nil {
		c, ok := s.cluster.ctl.Image().ScramCredentials[k]
		return c, ok
	}
	s.scram.mu.RLock()
	defer s.scram.mu.RUnlock()
	c, ok := s.scram.creds[k]
	return c, ok
}

// scramCredentials lists every credential (for Describe).
func (s *Server) scramCredentials() map[controller.ScramCredentialKey]scramCredential {
	if s.cluster != nil {
		return s.cluster.ctl.Image().ScramCredentials
	}
	s.scram.mu.RLock()
	defer s.scram.mu.RUnlock()
	return s.scram.creds
}

// alterScramCredentials applies an AlterUserScramCredentials request:
// through the controller in a cluster, else to meta.db.
func (s *Server) alterScramCredentials(ctx context.Context, req *kmsg.AlterUserSCRAMCredentialsRequest) ([]kmsg.AlterUserSCRAMCredentialsResponseResult, error) {
	if s.cluster != nil {
		resp, err := s.cluster.ctl.AlterUserScramCredentials(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Results, nil
	}
	st := s.scram
	st.mu.Lock()
	defer st.mu.Unlock()
	plan := controller.PlanScramAlteration(req, func(k controller.ScramCredentialKey) bool { _, ok := st.creds[k]; return ok })
	put := map[[2]string][]byte{}
	var del [][2]string
	for k, c := range plan.Upserts {
		m, _ := scramMechanismByType(k.Mechanism)
		b, _ := json.Marshal(c)
		put[[2]string{m.name, k.User}] = b
	}
	for _, k := range plan.Deletes {
		m, _ := scramMechanismByType(k.Mechanism)
		del = append(del, [2]string{m.name, k.User})
	}
	if len(put) > 0 || len(del) > 0 {
		if err := s.logs.Meta().PutScramCredentials(put, del); err != nil {
			return nil, err
		}
	}
	next := make(map[controller.ScramCredentialKey]scramCredential, len(st.creds)+len(plan.Upserts))
	for k, c := range st.creds {
		next[k] = c
	}
	for _, k := range plan.Deletes {
		delete(next, k)
	}
	for k, c := range plan.Upserts {
		next[k] = c
	}
	st.creds = next // readers of the old map keep a consistent copy
	return plan.Results, nil
}

// bootstrapScramUsers creates kbroker.scram.bootstrap.users that have no
// credential for their mechanism yet (kafka-storage format --add-scram).
// One request per credential: Kafka refuses a user named twice in one.
func (s *Server) bootstrapScramUsers() error {
	created := 0
	for _, u := range s.cfg.ScramBootstrapUsers {
		m, _ := scramMechanismByName(u.Mechanism)
		if _, ok := s.scramCredential(u.Mechanism, u.Name); ok {
			continue
		}
		salt := make([]byte, 32)
		rand.Read(salt)
		salted, err := m.saltedPassword(u.Password, salt, u.Iterations)
		if err != nil {
			return err
		}
		req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
		up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = u.Name, m.typ, int32(u.Iterations), salt, salted
		req.Upsertions = append(req.Upsertions, up)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		results, err := s.alterScramCredentials(ctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("broker: kbroker.scram.bootstrap.users: %w", err)
		}
		for _, r := range results {
			if r.ErrorCode != 0 {
				return fmt.Errorf("broker: kbroker.scram.bootstrap.users: user %s: %s", r.User, *r.ErrorMessage)
			}
		}
		created++
	}
	if created > 0 {
		s.logger.Info("SCRAM users created from kbroker.scram.bootstrap.users", "count", created)
	}
	return nil
}
