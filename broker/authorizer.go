package broker

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kbroker/kbroker/controller"
	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/storage"
)

// Authorization (Kafka's AuthHelper over the StandardAuthorizer). With
// authorizer.class.name empty, Server.authz is nil and every check below is
// one nil check that allows: exactly the broker without ACLs.
//
// The principal is the connection's (User:ANONYMOUS until SASL or TLS
// client authentication says otherwise), the host its peer's IP address.
//
// Inter-broker traffic: followers' Fetch and OffsetForLeaderEpoch, the
// coordinator's WriteTxnMarkers and AddPartitionsToTxn verification reach
// a client listener as any client does, and Kafka requires CLUSTER_ACTION
// on the cluster for them. kbroker's brokers connect in PLAINTEXT, so they
// are User:ANONYMOUS: a cluster with the authorizer on must make that
// principal a super user (super.users=User:ANONYMOUS, which is what Kafka
// needs too for a PLAINTEXT inter-broker listener) or grant it
// CLUSTER_ACTION on the cluster from the brokers' hosts; Start warns
// unless User:ANONYMOUS is a super user. The controller listener serves
// only the controller APIs between voters and is not authorized (Kafka's
// ControllerApis require CLUSTER_ACTION there too; kbroker's voters trust
// each other, as they do for every other controller request).

// standardAuthorizer is the one authorizer.class.name kbroker implements.
const standardAuthorizer = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

// newAuthorizer builds the authorizer the config asks for, nil for none.
func newAuthorizer(cfg Config) *acl.Authorizer {
	if cfg.AuthorizerClassName == "" {
		return nil
	}
	return acl.New(cfg.SuperUsers, cfg.AllowEveryoneIfNoACLFound)
}

// clientHost is the peer address ACL hosts are compared with.
func clientHost(nc net.Conn) string {
	switch a := nc.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case nil:
		return ""
	default:
		if h, _, err := net.SplitHostPort(a.String()); err == nil {
			return h
		}
		return a.String()
	}
}

// authorize reports whether the request's principal may perform op on the
// named resource (AuthHelper.authorize).
func (s *Server) authorize(creq *clientReq, op acl.Operation, rt acl.ResourceType, name string) bool {
	if s.authz == nil {
		return true
	}
	return s.authz.Authorize(creq.conn.principal.String(), clientHost(creq.conn.nc), op, rt, name)
}

// authorizeCluster is authorize on the CLUSTER resource.
func (s *Server) authorizeCluster(creq *clientReq, op acl.Operation) bool {
	return s.authorize(creq, op, acl.ResourceCluster, acl.ClusterName)
}

// authorizeByResourceType is Kafka's authorizeByResourceType: op on at
// least one resource of the type.
func (s *Server) authorizeByResourceType(creq *clientReq, op acl.Operation, rt acl.ResourceType) bool {
	if s.authz == nil {
		return true
	}
	return s.authz.AuthorizeByResourceType(creq.conn.principal.String(), clientHost(creq.conn.nc), op, rt)
}

// authorizedSet is the names of a request's resources its principal may
// act on (AuthHelper.filterByAuthorized); nil means all, without
// authorizer.
type authorizedSet map[string]bool

func (a authorizedSet) has(name string) bool { return a == nil || a[name] }

// authorizedNames checks each distinct name once.
func (s *Server) authorizedNames(creq *clientReq, op acl.Operation, rt acl.ResourceType, names func(yield func(string) bool)) authorizedSet {
	if s.authz == nil {
		return nil
	}
	p, host := creq.conn.principal.String(), clientHost(creq.conn.nc)
	out := authorizedSet{}
	for n := range names {
		if _, seen := out[n]; !seen {
			out[n] = s.authz.Authorize(p, host, op, rt, n)
		}
	}
	return out
}

// authorizedTopics is authorizedNames for topics.
func (s *Server) authorizedTopics(creq *clientReq, op acl.Operation, names func(yield func(string) bool)) authorizedSet {
	return s.authorizedNames(creq, op, acl.ResourceTopic, names)
}

// authorizedOperations is Kafka's AuthHelper.authorizedOperations: the
// bitfield of the resource type's operations the principal may perform,
// every one of them without authorizer.
func (s *Server) authorizedOperations(creq *clientReq, rt acl.ResourceType, name string) int32 {
	ops := acl.SupportedOperations[rt]
	if s.authz != nil {
		ops = slices.DeleteFunc(slices.Clone(ops), func(op acl.Operation) bool { return !s.authorize(creq, op, rt, name) })
	}
	return acl.OperationsBitField(ops)
}

// mayCreateTopic reports whether the request may create topic name:
// CREATE on the cluster or on the topic (KafkaApis' metadata auto-creation).
func (s *Server) mayCreateTopic(creq *clientReq, name string) bool {
	return s.authorizeCluster(creq, acl.OpCreate) || s.authorize(creq, acl.OpCreate, acl.ResourceTopic, name)
}

// aclStore keeps a single node's ACLs in meta.db and the authorizer in
// step with them; a cluster's live in the metadata log (cluster.reconcile
// feeds the authorizer).
type aclStore struct {
	mu   sync.Mutex // one change at a time
	meta *storage.MetaStore
	acls map[[16]byte]acl.Binding
}

// loadACLs reads a single node's ACLs into the authorizer.
func (s *Server) loadACLs() error {
	acls, err := s.logs.Meta().ACLs()
	if err != nil {
		return fmt.Errorf("broker: load ACLs: %w", err)
	}
	s.aclStore = &aclStore{meta: s.logs.Meta(), acls: acls}
	s.authz.SetACLs(slices.Collect(maps.Values(acls)))
	return nil
}

// createACLs adds bindings, each already valid; an ACL that exists is not
// added again (AclControlManager). errs[i] is bindings[i]'s outcome.
func (s *Server) createACLs(bindings []acl.Binding) ([]error, error) {
	if s.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), controllerTimeout)
		defer cancel()
		errs, err := s.cluster.ctl.CreateACLs(ctx, bindings)
		s.cluster.sync()
		return errs, err
	}
	st := s.aclStore
	st.mu.Lock()
	defer st.mu.Unlock()
	have := make(map[acl.Binding]bool, len(st.acls))
	for _, b := range st.acls {
		have[b] = true
	}
	put := map[[16]byte]acl.Binding{}
	for _, b := range bindings {
		if have[b] {
			continue
		}
		if len(put) == controller.MaxRecordsPerUserOp {
			return nil, newAPIError(kerr.PolicyViolation, controller.ExcessiveBatchMessage)
		}
		have[b] = true
		put[newACLID()] = b
	}
	if err := st.meta.UpdateACLs(put, nil); err != nil {
		return nil, err
	}
	maps.Copy(st.acls, put)
	s.authz.SetACLs(slices.Collect(maps.Values(st.acls)))
	return make([]error, len(bindings)), nil
}

// deleteACLs removes what each filter (already valid) matches and returns
// the removed bindings per filter.
func (s *Server) deleteACLs(filters []acl.Filter) ([][]acl.Binding, error) {
	if s.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), controllerTimeout)
		defer cancel()
		out, err := s.cluster.ctl.DeleteACLs(ctx, filters)
		s.cluster.sync()
		return out, err
	}
	st := s.aclStore
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([][]acl.Binding, len(filters))
	var del [][16]byte
	deleting := map[[16]byte]bool{}
	for i, f := range filters {
		for id, b := range st.acls {
			if !f.Matches(b) {
				continue
			}
			out[i] = append(out[i], b)
			if !deleting[id] {
				if len(del) == controller.MaxRecordsPerUserOp {
					return nil, newAPIError(kerr.PolicyViolation, controller.ExcessiveBatchMessage)
				}
				deleting[id] = true
				del = append(del, id)
			}
		}
	}
	if len(del) == 0 {
		return out, nil
	}
	if err := st.meta.UpdateACLs(nil, del); err != nil {
		return nil, err
	}
	for _, id := range del {
		delete(st.acls, id)
	}
	s.authz.SetACLs(slices.Collect(maps.Values(st.acls)))
	return out, nil
}

// newACLID is a random id for a single node's ACL (Kafka gives each ACL a
// Uuid, as topics have).
func newACLID() [16]byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	return id
}

// namesOf yields name(item) for each item: a request's topic or group
// names, for authorizedNames.
func namesOf[T any](items []T, name func(T) string) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for _, it := range items {
			if !yield(name(it)) {
				return
			}
		}
	}
}

// topicName is a request's topic by name or (newer versions) by id; ok is
// false for an id that names no topic, which the handler answers itself.
func (s *Server) topicName(name string, id [16]byte) (string, bool) {
	if name != "" || id == ([16]byte{}) {
		return name, true
	}
	t, ok := s.logs.TopicByID(storage.TopicID(id))
	if !ok {
		return "", false
	}
	return t.Name, true
}

// topicAllowed reports whether op is allowed on a request's topic given by
// name or id; an unknown id is allowed here, for the handler to answer.
func (s *Server) topicAllowed(creq *clientReq, op acl.Operation, name string, id [16]byte) bool {
	if s.authz == nil {
		return true
	}
	n, ok := s.topicName(name, id)
	return !ok || s.authorize(creq, op, acl.ResourceTopic, n)
}
