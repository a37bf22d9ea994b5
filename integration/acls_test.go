package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/kbroker/kbroker/broker"
)

// ACL tests: real clients against a broker with authorizer.class.name set.
// Clients log in with SASL PLAIN on a SASL_PLAINTEXT listener, so each
// identity is a principal of its own (User:admin, a super user, and
// User:alice, who starts with no rights); a client can also connect from a
// given loopback address, for rules on hosts.

const standardAuthorizer = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

const aclJaas = `org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" user_alice="alice-secret";`

// identity is who a test client acts as.
type identity struct {
	principal  string // the ACL principal
	user, pass string // its SASL PLAIN login
	from       string // the address it connects from; empty: any
}

var (
	admin = identity{principal: "User:admin", user: "admin", pass: "admin-secret"}
	alice = identity{principal: "User:alice", user: "alice", pass: "alice-secret"}
)

// aclProps configure the authorizer with admin as super user and a
// SASL_PLAINTEXT listener beside the PLAINTEXT one ("{listeners}" for a
// test cluster's own listeners).
func aclProps(listeners string) map[string]string {
	return map[string]string{
		"listeners":                      listeners + ",SASL_PLAINTEXT://127.0.0.1:0",
		"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
		"sasl.enabled.mechanisms":        "PLAIN",
		"listener.name.sasl_plaintext.plain.sasl.jaas.config": aclJaas,
		"authorizer.class.name":                               standardAuthorizer,
		"super.users":                                         "User:admin",
	}
}

// aclBroker starts a broker with the authorizer on; props override
// aclProps.
func aclBroker(t testing.TB, props map[string]string) *testBroker {
	t.Helper()
	all := aclProps("PLAINTEXT://127.0.0.1:0")
	for k, v := range props {
		all[k] = v
	}
	return startBroker(t, all)
}

// saslSeeds is where identities log in.
func (b *testBroker) saslSeeds() []string { return []string{b.ListenerAddr("SASL_PLAINTEXT")} }

// clientAs returns a kgo client logged in as id, closed at cleanup.
func clientAs(t testing.TB, id identity, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if id.from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(id.from)}
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.Dialer(d.DialContext),
		kgo.SASL(plain.Auth{User: id.user, Pass: id.pass}.AsMechanism()),
		kgo.RetryTimeout(3 * time.Second), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// allow grants id ops, from any host, on the resources the builder names
// (it must name resources and may set a pattern type).
func allow(t testing.TB, adm *kadm.Client, id identity, b *kadm.ACLBuilder, ops ...kadm.ACLOperation) {
	t.Helper()
	mustCreateACLs(t, adm, b.Allow(id.principal).AllowHosts("*").Operations(ops...))
}

// deny denies id ops, from any host, on the builder's resources.
func deny(t testing.TB, adm *kadm.Client, id identity, b *kadm.ACLBuilder, ops ...kadm.ACLOperation) {
	t.Helper()
	mustCreateACLs(t, adm, b.Deny(id.principal).DenyHosts("*").Operations(ops...))
}

func mustCreateACLs(t testing.TB, adm *kadm.Client, b *kadm.ACLBuilder) {
	t.Helper()
	res, err := adm.CreateACLs(ctx(t), b)
	if err != nil {
		t.Fatalf("CreateACLs: %v", err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("CreateACLs %s %s: %v %s", r.Name, r.Operation, r.Err, r.ErrMessage)
		}
	}
}

// errCode is the Kafka error in err, or nil.
func errCode(err error) *kerr.Error {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke
	}
	return nil
}

func TestACLsRoundTripAndRestart(t *testing.T) {
	t.Parallel()
	b := aclBroker(t, nil)
	adm := kadm.NewClient(clientAs(t, admin, b.saslSeeds()))
	allow(t, adm, alice, kadm.NewACLs().Topics("orders").ResourcePatternType(kadm.ACLPatternPrefixed), kadm.OpRead, kadm.OpWrite)
	deny(t, adm, alice, kadm.NewACLs().Groups("g"), kadm.OpRead)
	// The same ACL again is no error and no second copy.
	allow(t, adm, alice, kadm.NewACLs().Topics("orders").ResourcePatternType(kadm.ACLPatternPrefixed), kadm.OpRead)

	aliceACLs := func(adm *kadm.Client) kadm.DescribedACLs {
		t.Helper()
		res, err := adm.DescribeACLs(ctx(t), kadm.NewACLs().AnyResource().Allow(alice.principal).AllowHosts().
			Deny(alice.principal).DenyHosts().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternAny))
		if err != nil {
			t.Fatal(err)
		}
		var out kadm.DescribedACLs
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("DescribeACLs: %v", r.Err)
			}
			out = append(out, r.Described...)
		}
		return out
	}
	if got := aliceACLs(adm); len(got) != 3 {
		t.Fatalf("alice's ACLs: %+v, want 3", got)
	}

	// Durable: a restarted broker has them and enforces them.
	b = b.restart(t)
	adm = kadm.NewClient(clientAs(t, admin, b.saslSeeds()))
	if got := aliceACLs(adm); len(got) != 3 {
		t.Fatalf("alice's ACLs after restart: %+v, want 3", got)
	}
	createTopic(t, adm, "orders-eu", 1, nil)
	produceSync(t, clientAs(t, alice, b.saslSeeds()), &kgo.Record{Topic: "orders-eu", Value: []byte("x")})

	// A filter deletes what it matches, and reports it.
	dres, err := adm.DeleteACLs(ctx(t), kadm.NewACLs().Topics("orders").ResourcePatternType(kadm.ACLPatternPrefixed).
		Allow(alice.principal).AllowHosts().Operations(kadm.OpAny))
	if err != nil || len(dres) != 1 || dres[0].Err != nil || len(dres[0].Deleted) != 2 {
		t.Fatalf("DeleteACLs: %v %+v", err, dres)
	}
	if got := aliceACLs(adm); len(got) != 1 || got[0].Type != kmsg.ACLResourceTypeGroup {
		t.Fatalf("alice's ACLs after delete: %+v", got)
	}
	if err := clientAs(t, alice, b.saslSeeds()).ProduceSync(ctx(t), &kgo.Record{Topic: "orders-eu"}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce after the grant was deleted: %v", err)
	}
}

// Bindings Kafka refuses are INVALID_REQUEST, one by one.
func TestACLsInvalid(t *testing.T) {
	t.Parallel()
	b := aclBroker(t, nil)
	cl := clientAs(t, admin, b.saslSeeds())
	req := kmsg.NewPtrCreateACLsRequest()
	good := kmsg.NewCreateACLsRequestCreation()
	good.ResourceType, good.ResourceName, good.ResourcePatternType = kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral
	good.Principal, good.Host, good.Operation, good.PermissionType = "User:bob", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
	bad := func(f func(c *kmsg.CreateACLsRequestCreation)) kmsg.CreateACLsRequestCreation {
		c := good
		f(&c)
		return c
	}
	req.Creations = []kmsg.CreateACLsRequestCreation{
		good,
		bad(func(c *kmsg.CreateACLsRequestCreation) { c.Operation = kmsg.ACLOperationAny }),
		bad(func(c *kmsg.CreateACLsRequestCreation) { c.ResourcePatternType = kmsg.ACLResourcePatternTypeMatch }),
		bad(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceType = kmsg.ACLResourceTypeAny }),
		bad(func(c *kmsg.CreateACLsRequestCreation) {
			c.ResourceType, c.ResourceName = kmsg.ACLResourceTypeCluster, "other"
		}),
		bad(func(c *kmsg.CreateACLsRequestCreation) { c.Principal = "bob" }),
		bad(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceName = "" }),
	}
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.Results {
		want := kerr.InvalidRequest.Code
		if i == 0 {
			want = 0
		}
		if r.ErrorCode != want {
			t.Errorf("creation %d: error %d (%v), want %d", i, r.ErrorCode, r.ErrorMessage, want)
		}
	}
	dreq := kmsg.NewPtrDescribeACLsRequest()
	dreq.ResourceType = kmsg.ACLResourceTypeUnknown
	dresp, err := dreq.RequestWith(ctx(t), cl)
	if err != nil || dresp.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("DescribeAcls with an UNKNOWN filter: %v %+v", err, dresp)
	}
}

// One CreateAcls adds, and one DeleteAcls removes, at most 10,000 ACLs
// (Kafka's MAX_RECORDS_PER_USER_OP): past that the request changes nothing
// and its valid entries get POLICY_VIOLATION; an invalid one keeps its
// INVALID_REQUEST. ACLs that exist already do not count.
func TestACLsPerRequestLimit(t *testing.T) {
	t.Parallel()
	b := aclBroker(t, nil)
	cl := clientAs(t, admin, b.saslSeeds())
	creations := func(from, n int) []kmsg.CreateACLsRequestCreation {
		var out []kmsg.CreateACLsRequestCreation
		for i := from; i < from+n; i++ {
			c := kmsg.NewCreateACLsRequestCreation()
			c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, fmt.Sprintf("limit-%d", i), kmsg.ACLResourcePatternTypeLiteral
			c.Principal, c.Host, c.Operation, c.PermissionType = "User:bob", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
			out = append(out, c)
		}
		return out
	}
	create := func(cs []kmsg.CreateACLsRequestCreation) *kmsg.CreateACLsResponse {
		req := kmsg.NewPtrCreateACLsRequest()
		req.Creations = cs
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	count := func() int {
		req := kmsg.NewPtrDescribeACLsRequest()
		req.ResourceType, req.ResourcePatternType = kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeAny
		req.Operation, req.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatalf("DescribeAcls: %v %+v", err, resp)
		}
		return len(resp.Resources)
	}

	if resp := create(creations(0, 6000)); resp.Results[0].ErrorCode != 0 {
		t.Fatalf("6,000 ACLs: error %d %v", resp.Results[0].ErrorCode, resp.Results[0].ErrorMessage)
	}
	// 6,000 that exist and 6,000 new: 6,000 records, allowed.
	if resp := create(creations(0, 12000)); resp.Results[11999].ErrorCode != 0 {
		t.Fatalf("6,000 new among 12,000: error %d %v", resp.Results[11999].ErrorCode, resp.Results[11999].ErrorMessage)
	}
	// 10,001 new, and one invalid creation.
	over := creations(12000, 10001)
	invalid := over[0]
	invalid.Principal = "bob"
	resp := create(append(over, invalid))
	for i, r := range resp.Results {
		want := kerr.PolicyViolation.Code
		if i == len(resp.Results)-1 {
			want = kerr.InvalidRequest.Code
		}
		if r.ErrorCode != want {
			t.Fatalf("creation %d of 10,002: error %d, want %d", i, r.ErrorCode, want)
		}
	}
	if msg := resp.Results[0].ErrorMessage; msg == nil || *msg != "Unable to perform excessively large batch operation." {
		t.Errorf("message %v", msg)
	}
	if n := count(); n != 12000 {
		t.Fatalf("%d topic ACLs after the refused request, want 12,000", n)
	}

	// One filter matching all 12,000 is refused; the broker keeps them.
	del := kmsg.NewPtrDeleteACLsRequest()
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType, f.ResourcePatternType = kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeAny
	f.Operation, f.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	del.Filters = append(del.Filters, f)
	dresp, err := del.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := dresp.Results[0].ErrorCode; code != kerr.PolicyViolation.Code {
		t.Fatalf("deleting 12,000: error %d, want POLICY_VIOLATION", code)
	}
	if n := count(); n != 12000 {
		t.Fatalf("%d topic ACLs after the refused delete, want 12,000", n)
	}
}

// Without authorizer.class.name the ACL APIs answer SECURITY_DISABLED and
// nothing is authorized.
func TestACLsSecurityDisabled(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	adm := b.admin(t)
	res, err := adm.CreateACLs(ctx(t), kadm.NewACLs().Topics("t").Allow("User:bob").Operations(kadm.OpRead))
	if err != nil || len(res) != 1 || !errors.Is(res[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("CreateACLs without an authorizer: %v %+v", err, res)
	}
	dresp, err := kmsg.NewPtrDescribeACLsRequest().RequestWith(ctx(t), b.client(t))
	if err != nil || dresp.ErrorCode != kerr.SecurityDisabled.Code {
		t.Fatalf("DescribeACLs without an authorizer: %v %+v", err, dresp)
	}
	createTopic(t, adm, "free", 1, nil)
	produceSync(t, b.client(t), &kgo.Record{Topic: "free"})
}

// With the authorizer on and allow.everyone.if.no.acl.found false (Kafka's
// default), a broker without ACLs allows nobody but super users, whom no
// DENY stops; allow.everyone.if.no.acl.found=true opens what has no ACL.
func TestACLsDefaultDenyAndSuperUsers(t *testing.T) {
	t.Parallel()
	b := aclBroker(t, nil)
	for _, cl := range []*kgo.Client{b.client(t), clientAs(t, alice, b.saslSeeds())} { // User:ANONYMOUS, User:alice
		if err := cl.ProduceSync(ctx(t), &kgo.Record{Topic: "t"}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		res, err := kadm.NewClient(cl).CreateACLs(ctx(t), kadm.NewACLs().Topics("t").Allow("User:*").Operations(kadm.OpAll))
		if err != nil || len(res) != 1 || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed) {
			t.Fatalf("CreateACLs: %v %+v, want CLUSTER_AUTHORIZATION_FAILED", err, res)
		}
	}

	adm := kadm.NewClient(clientAs(t, admin, b.saslSeeds()))
	mustCreateACLs(t, adm, kadm.NewACLs().Topics("*").Clusters().Deny("User:*").Operations(kadm.OpAll))
	createTopic(t, adm, "t", 1, nil)
	produceSync(t, clientAs(t, admin, b.saslSeeds()), &kgo.Record{Topic: "t", Value: []byte("v")})
	consumeAs(t, admin, b.saslSeeds(), "t", 1)

	open := aclBroker(t, map[string]string{"allow.everyone.if.no.acl.found": "true"})
	oadm := kadm.NewClient(clientAs(t, admin, open.saslSeeds()))
	createTopic(t, oadm, "t", 1, nil)
	produceSync(t, clientAs(t, alice, open.saslSeeds()), &kgo.Record{Topic: "t", Value: []byte("v")})
	allow(t, oadm, admin, kadm.NewACLs().Topics("t"), kadm.OpAll)
	if err := clientAs(t, alice, open.saslSeeds()).ProduceSync(ctx(t), &kgo.Record{Topic: "t"}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to a topic with ACLs: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}

// Hosts: an ACL's host is the client's address; alice is refused from one
// host and served from another.
func TestACLsHost(t *testing.T) {
	t.Parallel()
	b := aclBroker(t, nil)
	adm := kadm.NewClient(clientAs(t, admin, b.saslSeeds()))
	createTopic(t, adm, "t", 1, nil)
	allow(t, adm, alice, kadm.NewACLs().Topics("t"), kadm.OpWrite)
	mustCreateACLs(t, adm, kadm.NewACLs().Topics("t").Deny(alice.principal).DenyHosts("127.0.0.2").Operations(kadm.OpWrite))
	here, there := alice, alice
	here.from, there.from = "127.0.0.1", "127.0.0.2"
	produceSync(t, clientAs(t, here, b.saslSeeds()), &kgo.Record{Topic: "t", Value: []byte("v")})
	noIdempotence := kgo.DisableIdempotentWrite()
	if err := clientAs(t, there, b.saslSeeds(), noIdempotence).ProduceSync(ctx(t), &kgo.Record{Topic: "t"}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce from 127.0.0.2: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// An idempotent producer there gets no producer id: InitProducerId
	// needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic, and
	// alice's only WRITE is denied from that host
	// (authorizeByResourceType).
	if err := clientAs(t, there, b.saslSeeds()).ProduceSync(ctx(t), &kgo.Record{Topic: "t"}).FirstErr(); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("idempotent produce from 127.0.0.2: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
}

func TestACLsUnknownAuthorizer(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"kafka.security.authorizer.AclAuthorizer", "com.example.Mine"} {
		if _, err := broker.ParseConfig(map[string]string{"authorizer.class.name": name}); err == nil {
			t.Errorf("authorizer.class.name=%s accepted", name)
		}
	}
}

// Topics: produce, consume, metadata, create and delete, by literal and
// prefixed ACLs; a DENY wins over an ALLOW.
func TestACLsTopic(t *testing.T) {
	t.Parallel()
	b := aclBroker(t, nil)
	seeds := b.saslSeeds()
	adm := kadm.NewClient(clientAs(t, admin, seeds))
	createTopic(t, adm, "secret", 1, nil)
	createTopic(t, adm, "public", 1, nil)
	produceSync(t, clientAs(t, admin, seeds), &kgo.Record{Topic: "secret", Value: []byte("s")})
	allow(t, adm, alice, kadm.NewACLs().Topics("public"), kadm.OpDescribe)

	cl := clientAs(t, alice, seeds)
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Topic: "secret"}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	assertConsumeDenied(t, alice, seeds, "secret")

	// Metadata for all topics hides what alice may not describe; asked
	// by name it is refused.
	aadm := kadm.NewClient(cl)
	md, err := aadm.Metadata(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if names := md.Topics.Names(); !slices.Equal(names, []string{"public"}) {
		t.Fatalf("alice's metadata lists %v, want [public]", names)
	}
	md, err = aadm.Metadata(ctx(t), "secret")
	if err == nil {
		err = md.Topics["secret"].Err
	}
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("metadata for secret: %v", err)
	}
	if r, err := aadm.CreateTopic(ctx(t), 1, 1, nil, "mine"); err == nil && !errors.Is(r.Err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("create topic: %v", r.Err)
	}
	dr, err := aadm.DeleteTopics(ctx(t), "public")
	if err != nil || !errors.Is(dr["public"].Err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("delete topic: %v %+v", err, dr)
	}

	// A prefixed grant opens secret; a literal DENY of READ keeps it from
	// being read while writes pass.
	allow(t, adm, alice, kadm.NewACLs().Topics("sec").ResourcePatternType(kadm.ACLPatternPrefixed), kadm.OpAll)
	deny(t, adm, alice, kadm.NewACLs().Topics("secret"), kadm.OpRead)
	produceSync(t, clientAs(t, alice, seeds), &kgo.Record{Topic: "secret", Value: []byte("a")})
	assertConsumeDenied(t, alice, seeds, "secret")
	// Auto-creation through Metadata needs CREATE besides DESCRIBE.
	allow(t, adm, alice, kadm.NewACLs().Topics("auto").ResourcePatternType(kadm.ACLPatternPrefixed), kadm.OpDescribe)
	autoCreate := func() int16 {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.Topics, req.AllowAutoTopicCreation = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("auto-1")}}, true
		resp, err := req.RequestWith(ctx(t), clientAs(t, alice, seeds))
		if err != nil || len(resp.Topics) != 1 {
			t.Fatalf("metadata: %v", err)
		}
		return resp.Topics[0].ErrorCode
	}
	if code := autoCreate(); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("auto-creation without CREATE: error %d", code)
	}
	if td, err := adm.ListTopics(ctx(t), "auto-1"); err == nil && td.Has("auto-1") && td["auto-1"].Err == nil {
		t.Fatal("auto-1 was created")
	}
	allow(t, adm, alice, kadm.NewACLs().Clusters(), kadm.OpCreate)
	if code := autoCreate(); code != 0 && code != kerr.LeaderNotAvailable.Code {
		t.Fatalf("auto-creation with CREATE: error %d", code)
	}
	createTopic(t, kadm.NewClient(clientAs(t, alice, seeds)), "mine", 1, nil)
}

// assertConsumeDenied checks that id's fetches of topic fail with
// TOPIC_AUTHORIZATION_FAILED.
func assertConsumeDenied(t *testing.T, id identity, seeds []string, topic string) {
	t.Helper()
	cl := clientAs(t, id, seeds, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	c, cancel := context.WithTimeout(ctx(t), 10*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(c)
		if c.Err() != nil {
			t.Fatalf("consuming %s: no TOPIC_AUTHORIZATION_FAILED", topic)
		}
		if len(fs.Records()) > 0 {
			t.Fatalf("consumed %d records of %s", len(fs.Records()), topic)
		}
		for _, e := range fs.Errors() {
			if errors.Is(e.Err, kerr.TopicAuthorizationFailed) {
				return
			}
		}
	}
}

// Groups: joining and committing need READ on the group.
func TestACLsGroup(t *testing.T) {
	t.Parallel()
	b := aclBroker(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	seeds := b.saslSeeds()
	adm := kadm.NewClient(clientAs(t, admin, seeds))
	createTopic(t, adm, "events", 1, nil)
	allow(t, adm, alice, kadm.NewACLs().Topics("events"), kadm.OpRead)

	cl := clientAs(t, alice, seeds, kgo.ConsumeTopics("events"), kgo.ConsumerGroup("analytics"))
	c, cancel := context.WithTimeout(ctx(t), 10*time.Second)
	defer cancel()
	for denied := false; !denied; {
		fs := cl.PollFetches(c)
		if c.Err() != nil {
			t.Fatal("joining the group: no GROUP_AUTHORIZATION_FAILED")
		}
		for _, e := range fs.Errors() {
			denied = denied || errors.Is(e.Err, kerr.GroupAuthorizationFailed)
		}
	}
	cl.Close() // it would keep trying, and join once allowed below
	aadm := kadm.NewClient(clientAs(t, alice, seeds))
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "events", Partition: 0, At: 0})
	cr, err := aadm.CommitOffsets(ctx(t), "analytics", offs)
	if err == nil {
		err = cr.Error()
	}
	if !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Fatalf("commit: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}

	// With READ on the group the same consumer gets in and commits.
	allow(t, adm, alice, kadm.NewACLs().Groups("analytics"), kadm.OpRead)
	produceSync(t, clientAs(t, admin, seeds), &kgo.Record{Topic: "events", Value: []byte("e")})
	ok := clientAs(t, alice, seeds, kgo.ConsumeTopics("events"), kgo.ConsumerGroup("analytics"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for n := 0; n < 1; {
		fs := ok.PollFetches(ctx(t))
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume with READ on the group: %v", err)
		}
		n += len(fs.Records())
	}
	if err := ok.CommitUncommittedOffsets(ctx(t)); err != nil {
		t.Fatalf("commit with READ on the group: %v", err)
	}
}

// Transactional ids: a transactional producer's InitProducerId needs WRITE
// on its id.
func TestACLsTransactionalID(t *testing.T) {
	t.Parallel()
	b := aclBroker(t, nil)
	seeds := b.saslSeeds()
	adm := kadm.NewClient(clientAs(t, admin, seeds))
	createTopic(t, adm, "ledger", 1, nil)
	allow(t, adm, alice, kadm.NewACLs().Topics("ledger"), kadm.OpWrite)

	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr("tx-1"), 10000
	// kgo looks the coordinator up first, which alice may not either.
	resp, err := req.RequestWith(ctx(t), clientAs(t, alice, seeds))
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Fatalf("InitProducerId: %v", err)
	}
	cl := clientAs(t, alice, seeds, kgo.TransactionalID("tx-1"), kgo.DefaultProduceTopic("ledger"))
	if err := cl.BeginTransaction(); err == nil {
		err = cl.ProduceSync(ctx(t), &kgo.Record{Value: []byte("x")}).FirstErr()
	}
	if !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Fatalf("transactional produce: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
	}

	allow(t, adm, alice, kadm.NewACLs().TransactionalIDs("tx-").ResourcePatternType(kadm.ACLPatternPrefixed), kadm.OpWrite)
	cl = clientAs(t, alice, seeds, kgo.TransactionalID("tx-1"), kgo.DefaultProduceTopic("ledger"))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceSync(t, cl, &kgo.Record{Value: []byte("x")})
	if err := cl.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
		t.Fatalf("commit with WRITE on the id: %v", err)
	}
}

// The cluster resource: admin APIs need ALTER or DESCRIBE on it, and the
// authorized operations a client asks for are its own.
func TestACLsCluster(t *testing.T) {
	t.Parallel()
	b := aclBroker(t, nil)
	seeds := b.saslSeeds()
	adm := kadm.NewClient(clientAs(t, admin, seeds))
	createTopic(t, adm, "t", 1, nil)
	allow(t, adm, alice, kadm.NewACLs().Topics("t"), kadm.OpDescribe)
	cl := clientAs(t, alice, seeds)
	aadm := kadm.NewClient(cl)

	if _, err := aadm.ElectLeaders(ctx(t), kadm.ElectPreferredReplica, kadm.TopicsSet{"t": {0: {}}}); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("ElectLeaders: %v", err)
	}
	var ra kadm.AlterPartitionAssignmentsReq
	ra.Assign("t", 0, []int32{1})
	if _, err := aadm.AlterPartitionAssignments(ctx(t), ra); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("AlterPartitionAssignments: %v", err)
	}
	dc := kmsg.NewPtrDescribeClusterRequest()
	if resp, err := dc.RequestWith(ctx(t), cl); err != nil || resp.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("DescribeCluster: %v %+v", err, resp)
	}
	ld := kmsg.NewPtrDescribeLogDirsRequest()
	if resp, err := ld.RequestWith(ctx(t), cl.Broker(1)); err != nil || resp.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("DescribeLogDirs: %v %+v", err, resp)
	}
	// Inter-broker requests need CLUSTER_ACTION.
	wm := kmsg.NewPtrWriteTxnMarkersRequest()
	wm.Markers = []kmsg.WriteTxnMarkersRequestMarker{{ProducerID: 1, Topics: []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "t", Partitions: []int32{0}}}}}
	if resp, err := wm.RequestWith(ctx(t), cl.Broker(1)); err != nil || len(resp.Markers) != 1 ||
		resp.Markers[0].Topics[0].Partitions[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("WriteTxnMarkers: %v %+v", err, resp)
	}
	if res, err := aadm.CreateACLs(ctx(t), kadm.NewACLs().Topics("t").Allow(alice.principal).Operations(kadm.OpAll)); err != nil || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("CreateACLs: %v %+v", err, res)
	}
	if resp, err := kmsg.NewPtrDescribeACLsRequest().RequestWith(ctx(t), cl); err != nil || resp.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("DescribeACLs: %v %+v", err, resp)
	}

	// Authorized operations: alice may DESCRIBE the cluster and t, and
	// READ t.
	allow(t, adm, alice, kadm.NewACLs().Clusters(), kadm.OpDescribe)
	allow(t, adm, alice, kadm.NewACLs().Topics("t"), kadm.OpRead)
	md := kmsg.NewPtrMetadataRequest()
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("t")}}
	md.IncludeTopicAuthorizedOperations = true
	mresp, err := md.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	describe := int32(1) << kmsg.ACLOperationDescribe
	if read := int32(1) << kmsg.ACLOperationRead; len(mresp.Topics) != 1 || mresp.Topics[0].AuthorizedOperations != describe|read {
		t.Errorf("topic authorized operations %+v, want %b", mresp.Topics, describe|read)
	}
	dc.IncludeClusterAuthorizedOperations = true
	if resp, err := dc.RequestWith(ctx(t), cl); err != nil || resp.ErrorCode != 0 || resp.ClusterAuthorizedOperations != describe {
		t.Errorf("DescribeCluster with DESCRIBE: %v %+v", err, resp)
	}
}

// In a cluster ACLs travel through the metadata log: one created through
// one node is enforced by every other.
func TestACLsCluster3Nodes(t *testing.T) {
	t.Parallel()
	// The brokers reach each other on the PLAINTEXT listeners as
	// User:ANONYMOUS, a super user as Kafka needs it with a PLAINTEXT
	// inter-broker listener; clients log in on the SASL ones.
	props := aclProps("{listeners}")
	props["super.users"] = "User:admin;User:ANONYMOUS"
	c := startCluster(t, 3, props)
	var seeds []string
	for _, nd := range c.nodes {
		seeds = append(seeds, nd.srv.ListenerAddr("SASL_PLAINTEXT"))
	}
	adm := kadm.NewClient(clientAs(t, admin, seeds[:1]))
	createTopic3 := func(name string) {
		t.Helper()
		r, err := adm.CreateTopic(ctx(t), 1, 3, nil, name)
		if err != nil || r.Err != nil {
			t.Fatalf("create %s: %v %v", name, err, r.Err)
		}
	}
	createTopic3("shared")
	produceSync(t, clientAs(t, admin, seeds), &kgo.Record{Topic: "shared", Value: []byte("replicated")})

	// alice asks each node directly for the topic: refused everywhere.
	cl := clientAs(t, alice, seeds)
	metadataOn := func(node int32) int16 {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("shared")}}
		resp, err := req.RequestWith(ctx(t), cl.Broker(int(node)))
		if err != nil || len(resp.Topics) != 1 {
			t.Fatalf("metadata from node %d: %v", node, err)
		}
		return resp.Topics[0].ErrorCode
	}
	for id := int32(1); id <= 3; id++ {
		if code := metadataOn(id); code != kerr.TopicAuthorizationFailed.Code {
			t.Fatalf("node %d: error %d, want TOPIC_AUTHORIZATION_FAILED", id, code)
		}
	}
	// A broker that does not coordinate groups still refuses alice's
	// JoinGroup for want of rights, not NOT_COORDINATOR: Kafka authorizes
	// before it routes.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = "g"
	fresp, err := fc.RequestWith(ctx(t), clientAs(t, admin, seeds))
	if err != nil || fresp.ErrorCode != 0 {
		t.Fatalf("FindCoordinator: %v %+v", err, fresp)
	}
	other := fresp.NodeID%3 + 1
	jg := kmsg.NewPtrJoinGroupRequest()
	jg.Group, jg.ProtocolType, jg.SessionTimeoutMillis, jg.RebalanceTimeoutMillis = "g", "consumer", 10000, 10000
	jg.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	if resp, err := jg.RequestWith(ctx(t), cl.Broker(int(other))); err != nil || resp.ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("JoinGroup on node %d (coordinator %d): %v %+v", other, fresp.NodeID, err, resp)
	}
	// A fetch posing as a follower needs CLUSTER_ACTION.
	f := kmsg.NewPtrFetchRequest() // kgo sends the newest version: ids, ReplicaState
	f.ReplicaID, f.ReplicaState.ID, f.ReplicaState.Epoch, f.MaxWaitMillis = 2, 2, -1, 0
	f.Topics = []kmsg.FetchRequestTopic{{Topic: "shared", TopicID: topicID(t, adm, "shared"), Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}}}
	if resp, err := f.RequestWith(ctx(t), cl.Broker(1)); err != nil || len(resp.Topics) != 1 ||
		resp.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("follower fetch as alice: %v %+v", err, resp)
	}
	// Granted through node 1, the read is allowed on every node.
	allow(t, adm, alice, kadm.NewACLs().Topics("shared"), kadm.OpRead)
	for id := int32(1); id <= 3; id++ {
		deadline := time.Now().Add(10 * time.Second)
		for metadataOn(id) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("node %d never applied the ACL", id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	consumeAs(t, alice, seeds, "shared", 1)
}

// consumeAs reads n records of topic from the start as id.
func consumeAs(t *testing.T, id identity, seeds []string, topic string, n int) {
	t.Helper()
	cl := clientAs(t, id, seeds, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx(t))
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume %s: %v", topic, err)
		}
		got += len(fs.Records())
	}
}
