package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, generated for one test into its temp dir.
type testPKI struct {
	caPEM      []byte
	caFile     string
	serverFile string // key and chain, as ssl.keystore.location takes it
	pool       *x509.CertPool
	client     tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kbroker test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, subject pkix.Name, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: subject,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		pk, _ := x509.MarshalPKCS8PrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	}
	p := &testPKI{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	srvCert, srvKey := issue(2, pkix.Name{CommonName: "127.0.0.1"}, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	cliCert, cliKey := issue(3, pkix.Name{CommonName: "client", OrganizationalUnit: []string{"eng"}, Organization: []string{"kbroker"}}, x509.ExtKeyUsageClientAuth, nil)
	p.caFile = filepath.Join(dir, "ca.pem")
	p.serverFile = filepath.Join(dir, "server.pem")
	if err := os.WriteFile(p.caFile, p.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.serverFile, append(append(srvKey, srvCert...), p.caPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	if p.client, err = tls.X509KeyPair(cliCert, cliKey); err != nil {
		t.Fatal(err)
	}
	return p
}

// clientTLS is a client config trusting the test CA, with the client
// certificate if withCert.
func (p *testPKI) clientTLS(withCert bool) *tls.Config {
	c := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	if withCert {
		c.Certificates = []tls.Certificate{p.client}
	}
	return c
}

const plainJaas = `org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";`

// startSecureBroker starts a broker with PLAINTEXT, SSL, SASL_PLAINTEXT and
// SASL_SSL listeners on 127.0.0.1 and the users alice (PLAIN and both
// SCRAMs) and bob (SCRAM-SHA-512).
func startSecureBroker(t testing.TB, pki *testPKI, extra map[string]string) *testBroker {
	t.Helper()
	props := map[string]string{
		"listeners":               "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
		"ssl.keystore.type":       "PEM",
		"ssl.keystore.location":   pki.serverFile,
		"ssl.truststore.type":     "PEM",
		"ssl.truststore.location": pki.caFile,
		"sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
		"listener.name.sasl_plaintext.plain.sasl.jaas.config": plainJaas,
		"listener.name.sasl_ssl.plain.sasl.jaas.config":       plainJaas,
		"kbroker.scram.bootstrap.users":                       "SCRAM-SHA-256=[name=alice,password=alice-secret];SCRAM-SHA-512=[name=alice,password=alice-secret];SCRAM-SHA-512=[name=bob,password=bob-secret,iterations=8192]",
	}
	for k, v := range extra {
		props[k] = v
	}
	return startBroker(t, props)
}

// produceConsume produces n records to a new topic and reads them back.
func produceConsume(t testing.TB, seed string, opts ...kgo.Opt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := fmt.Sprintf("sec-%d", time.Now().UnixNano())
	base := append([]kgo.Opt{kgo.SeedBrokers(seed), kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)
	cl, err := kgo.NewClient(base...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 200
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", 1000)))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume after %d records: %v", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if want := fmt.Sprintf("value-%d-", got); !strings.HasPrefix(string(r.Value), want) {
				t.Fatalf("record %d is %.20q", got, r.Value)
			}
			got++
		})
	}
}

func scramMech(mech, user, pass string) sasl.Mechanism {
	a := scram.Auth{User: user, Pass: pass}
	if mech == "SCRAM-SHA-512" {
		return a.AsSha512Mechanism()
	}
	return a.AsSha256Mechanism()
}

func TestSecurityProduceConsume(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	b := startSecureBroker(t, pki, nil)
	dialTLS := kgo.DialTLSConfig(pki.clientTLS(false))
	for _, tc := range []struct {
		name     string
		listener string
		opts     []kgo.Opt
	}{
		{"SSL", "SSL", []kgo.Opt{dialTLS}},
		{"SASL_PLAINTEXT/PLAIN", "SASL_PLAINTEXT", []kgo.Opt{kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism())}},
		{"SASL_PLAINTEXT/SCRAM-SHA-256", "SASL_PLAINTEXT", []kgo.Opt{kgo.SASL(scramMech("SCRAM-SHA-256", "alice", "alice-secret"))}},
		{"SASL_PLAINTEXT/SCRAM-SHA-512", "SASL_PLAINTEXT", []kgo.Opt{kgo.SASL(scramMech("SCRAM-SHA-512", "bob", "bob-secret"))}},
		{"SASL_SSL/SCRAM-SHA-256", "SASL_SSL", []kgo.Opt{dialTLS, kgo.SASL(scramMech("SCRAM-SHA-256", "alice", "alice-secret"))}},
		{"SASL_SSL/PLAIN", "SASL_SSL", []kgo.Opt{dialTLS, kgo.SASL(plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			produceConsume(t, b.ListenerAddr(tc.listener), tc.opts...)
		})
	}
}

// pingErr pings with a fresh client and returns its error.
func pingErr(t testing.TB, seed string, opts ...kgo.Opt) error {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seed), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

func TestSASLFailures(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	b := startSecureBroker(t, pki, nil)
	addr := b.ListenerAddr("SASL_PLAINTEXT")
	for _, tc := range []struct {
		name string
		mech sasl.Mechanism
		want *kerr.Error
		msg  string
	}{
		{"PLAIN bad password", plain.Auth{User: "alice", Pass: "nope"}.AsMechanism(), kerr.SaslAuthenticationFailed, "Authentication failed: Invalid username or password"},
		{"SCRAM bad password", scramMech("SCRAM-SHA-256", "alice", "nope"), kerr.SaslAuthenticationFailed, "due to invalid credentials with SASL mechanism SCRAM-SHA-256"},
		{"SCRAM unknown user", scramMech("SCRAM-SHA-512", "mallory", "x"), kerr.SaslAuthenticationFailed, "Invalid user credentials"},
		{"SCRAM wrong mechanism for user", scramMech("SCRAM-SHA-256", "bob", "bob-secret"), kerr.SaslAuthenticationFailed, "Invalid user credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := pingErr(t, addr, kgo.SASL(tc.mech))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want %v with %q", err, tc.want, tc.msg)
			}
		})
	}
	t.Run("unknown mechanism", func(t *testing.T) {
		t.Parallel()
		c := rawConn(t, addr)
		resp := c.request(t, &kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "GSSAPI"}).(*kmsg.SASLHandshakeResponse)
		if resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code || strings.Join(resp.SupportedMechanisms, ",") != "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512" {
			t.Fatalf("%+v", resp)
		}
		c.wantClosed(t)
	})
	t.Run("request before authentication", func(t *testing.T) {
		t.Parallel()
		c := rawConn(t, addr)
		c.request(t, kmsg.NewPtrApiVersionsRequest()) // allowed
		c.send(t, kmsg.NewPtrMetadataRequest())
		c.wantClosed(t)
		c = rawConn(t, addr)
		c.request(t, &kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "PLAIN"})
		c.send(t, kmsg.NewPtrMetadataRequest())
		c.wantClosed(t)
	})
	t.Run("garbage SASL tokens", func(t *testing.T) {
		t.Parallel()
		for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
			for _, tok := range [][]byte{nil, {0}, []byte("n,,n=,r="), []byte(strings.Repeat("\xff", 5000))} {
				c := rawConn(t, addr)
				c.request(t, &kmsg.SASLHandshakeRequest{Version: 1, Mechanism: mech})
				resp := c.request(t, &kmsg.SASLAuthenticateRequest{Version: 2, SASLAuthBytes: tok}).(*kmsg.SASLAuthenticateResponse)
				if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || resp.ErrorMessage == nil {
					t.Fatalf("%s %q: %+v", mech, tok, resp)
				}
				c.wantClosed(t)
			}
		}
		// Bytes that are no Kafka request at all.
		c := rawConn(t, addr)
		c.writeFrame(t, []byte("\x00\x11garbage"))
		c.wantClosed(t)
	})
	t.Run("failure answered after connection.failed.authentication.delay.ms", func(t *testing.T) {
		t.Parallel()
		c := rawConn(t, addr)
		c.request(t, &kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "PLAIN"})
		began := time.Now()
		resp := c.request(t, &kmsg.SASLAuthenticateRequest{Version: 2, SASLAuthBytes: []byte("\x00alice\x00wrong")}).(*kmsg.SASLAuthenticateResponse)
		// A lower bound only: the broker sleeps at least the delay (Kafka's
		// default, 100 ms) before it answers.
		if took := time.Since(began); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || took < 100*time.Millisecond {
			t.Fatalf("answered %+v after %v, want SASL_AUTHENTICATION_FAILED after at least 100ms", resp, took)
		}
		c.wantClosed(t)
	})
	t.Run("handshake v0 raw tokens", func(t *testing.T) {
		t.Parallel()
		c := rawConn(t, addr)
		c.request(t, &kmsg.SASLHandshakeRequest{Version: 0, Mechanism: "PLAIN"})
		c.writeFrame(t, []byte("\x00alice\x00alice-secret"))
		if n := c.readFrame(t); len(n) != 0 {
			t.Fatalf("server token %q", n)
		}
		c.request(t, kmsg.NewPtrMetadataRequest()) // authenticated
		c = rawConn(t, addr)
		c.request(t, &kmsg.SASLHandshakeRequest{Version: 0, Mechanism: "PLAIN"})
		c.writeFrame(t, []byte("\x00alice\x00wrong"))
		c.wantClosed(t)
	})
	// The broker still serves after all that.
	if err := pingErr(t, addr, kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism())); err != nil {
		t.Fatal(err)
	}
}

func TestTLSBadClients(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	b := startSecureBroker(t, pki, nil)
	// A TLS handshake to the plaintext listener: the ClientHello is an
	// impossible frame, the connection closes.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", b.ListenerAddr("PLAINTEXT"), pki.clientTLS(false))
	if err == nil {
		conn.Close()
		t.Fatal("TLS handshake with a plaintext listener succeeded")
	}
	// A plaintext request to the TLS listener: the handshake fails.
	c := rawConn(t, b.ListenerAddr("SSL"))
	c.send(t, kmsg.NewPtrApiVersionsRequest())
	c.wantClosed(t)
	// A client that does not trust the broker's certificate.
	if err := pingErr(t, b.ListenerAddr("SSL"), kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12})); err == nil {
		t.Fatal("untrusted certificate accepted")
	}
	for _, l := range []string{"PLAINTEXT", "SSL"} {
		opts := []kgo.Opt{}
		if l == "SSL" {
			opts = append(opts, kgo.DialTLSConfig(pki.clientTLS(false)))
		}
		if err := pingErr(t, b.ListenerAddr(l), opts...); err != nil {
			t.Fatalf("%s after bad clients: %v", l, err)
		}
	}
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	b := startSecureBroker(t, pki, map[string]string{"listener.name.ssl.ssl.client.auth": "required"})
	addr := b.ListenerAddr("SSL")
	if err := pingErr(t, addr, kgo.DialTLSConfig(pki.clientTLS(false))); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	produceConsume(t, addr, kgo.DialTLSConfig(pki.clientTLS(true)))
	// SASL_SSL keeps the global ssl.client.auth (none).
	produceConsume(t, b.ListenerAddr("SASL_SSL"), kgo.DialTLSConfig(pki.clientTLS(false)), kgo.SASL(scramMech("SCRAM-SHA-512", "bob", "bob-secret")))
	// The principal is the certificate's DN (broker.TestTLSPrincipal
	// checks the mapping on the connection itself).
}

func TestSASLReauthentication(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	b := startSecureBroker(t, pki, map[string]string{"connections.max.reauth.ms": "1000"})
	addr := b.ListenerAddr("SASL_PLAINTEXT")

	// A client that does not re-authenticate is closed after expiry.
	c := rawConn(t, addr)
	c.request(t, &kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "PLAIN"})
	resp := c.request(t, &kmsg.SASLAuthenticateRequest{Version: 1, SASLAuthBytes: []byte("\x00alice\x00alice-secret")}).(*kmsg.SASLAuthenticateResponse)
	if resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 1000 {
		t.Fatalf("%+v", resp)
	}
	c.request(t, kmsg.NewPtrMetadataRequest())
	time.Sleep(1200 * time.Millisecond)
	c.send(t, kmsg.NewPtrMetadataRequest())
	c.wantClosed(t)

	// franz-go re-authenticates on its own: a client producing for longer
	// than the session keeps working on its connections.
	// The connections accepted show that it did not reconnect instead.
	for _, mech := range []sasl.Mechanism{plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism(), scramMech("SCRAM-SHA-256", "alice", "alice-secret")} {
		before, _ := scrape(t, b.HTTPAddr()).value("kbroker_connections_accepted_total", "listener", "SASL_PLAINTEXT")
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(mech), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("reauth-"+mech.Name()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for i := range 12 {
			if err := cl.ProduceSync(ctx, kgo.StringRecord(fmt.Sprint(i))).FirstErr(); err != nil {
				t.Fatalf("%s: produce %d: %v", mech.Name(), i, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
		cancel()
		cl.Close()
		after, _ := scrape(t, b.HTTPAddr()).value("kbroker_connections_accepted_total", "listener", "SASL_PLAINTEXT")
		t.Logf("%s: %v connections accepted", mech.Name(), after-before)
		if after-before > 3 { // seed, then the broker's produce and metadata connections
			t.Errorf("%s: %v connections over 3s of 1s sessions: the client reconnected instead of re-authenticating", mech.Name(), after-before)
		}
	}
}

func TestScramCredentialAdmin(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	b := startSecureBroker(t, pki, nil)
	adm := kadm.NewClient(newClient(t, b.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	described, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(described) != 2 || len(described["alice"].CredInfos) != 2 || described["bob"].CredInfos[0].Iterations != 8192 {
		t.Fatalf("bootstrap users: %+v", described)
	}
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "carol", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "carol-secret"},
	})
	if err != nil || res.Error() != nil {
		t.Fatalf("alter: %v %v", err, res.Error())
	}
	addr := b.ListenerAddr("SASL_PLAINTEXT")
	if err := pingErr(t, addr, kgo.SASL(scramMech("SCRAM-SHA-256", "carol", "carol-secret"))); err != nil {
		t.Fatalf("new user: %v", err)
	}
	// Kafka's refusals, per user.
	// kadm checks iterations itself: the request is built by hand.
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	req.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{{Name: "nobody", Mechanism: 1}, {Name: "alice", Mechanism: 1}}
	salt := []byte("0123456789abcdef")
	req.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{
		{Name: "erin", Mechanism: 1, Iterations: 100, Salt: salt, SaltedPassword: salt},
		{Name: "frank", Mechanism: 2, Iterations: 20000, Salt: salt, SaltedPassword: salt},
		{Name: "alice", Mechanism: 1, Iterations: 4096, Salt: salt, SaltedPassword: salt}, // deleted too: twice
		{Name: "gina", Mechanism: 3, Iterations: 4096, Salt: salt, SaltedPassword: salt},
		{Name: "", Mechanism: 1, Iterations: 4096, Salt: salt, SaltedPassword: salt},
	}
	resp, err := req.RequestWith(ctx, newClient(t, b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*kerr.Error{"nobody": kerr.ResourceNotFound, "erin": kerr.UnacceptableCredential, "frank": kerr.UnacceptableCredential,
		"alice": kerr.DuplicateResource, "gina": kerr.UnsupportedSaslMechanism, "": kerr.UnacceptableCredential}
	if len(resp.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(resp.Results), len(want))
	}
	for _, r := range resp.Results {
		if e := want[r.User]; r.ErrorCode != e.Code {
			t.Errorf("%q: %v, want %v", r.User, kerr.ErrorForCode(r.ErrorCode), e)
		}
	}
	d, err := adm.DescribeUserSCRAMs(ctx, "carol", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if d["carol"].Err != nil || !errors.Is(d["nobody"].Err, kerr.ResourceNotFound) {
		t.Fatalf("%+v", d)
	}

	// Survives a restart; a deleted credential no longer logs in.
	b = b.restart(t)
	addr = b.ListenerAddr("SASL_PLAINTEXT")
	if err := pingErr(t, addr, kgo.SASL(scramMech("SCRAM-SHA-256", "carol", "carol-secret"))); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	adm = kadm.NewClient(newClient(t, b.Addr()))
	if res, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha256}}, nil); err != nil || res.Error() != nil {
		t.Fatalf("delete: %v %v", err, res.Error())
	}
	if err := pingErr(t, addr, kgo.SASL(scramMech("SCRAM-SHA-256", "carol", "carol-secret"))); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("deleted user: %v", err)
	}
}

// rawKafkaConn speaks the protocol by hand, to send what clients would not.
type rawKafkaConn struct {
	net.Conn
	corr int32
}

func rawConn(t testing.TB, addr string) *rawKafkaConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	return &rawKafkaConn{Conn: nc}
}

func (c *rawKafkaConn) writeFrame(t testing.TB, b []byte) {
	t.Helper()
	if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)); err != nil {
		t.Fatal(err)
	}
}

func (c *rawKafkaConn) readFrame(t testing.TB) []byte {
	t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatalf("read: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func (c *rawKafkaConn) send(t testing.TB, req kmsg.Request) {
	t.Helper()
	c.corr++
	c.writeFrame(t, kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, req, c.corr)[4:])
}

func (c *rawKafkaConn) request(t testing.TB, req kmsg.Request) kmsg.Response {
	t.Helper()
	c.send(t, req)
	b := c.readFrame(t)
	resp := req.ResponseKind()
	b = b[4:] // correlation id
	if resp.IsFlexible() && req.Key() != 18 {
		b = b[1:] // empty header tags
	}
	if err := resp.ReadFrom(b); err != nil {
		t.Fatalf("%s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// wantClosed expects the broker to close the connection.
func (c *rawKafkaConn) wantClosed(t testing.TB) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	for {
		_, err := c.Read(b[:])
		if err == nil {
			continue // the rest of a response
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
			return
		}
		t.Fatalf("connection not closed: %v", err)
	}
}

// TestClusterScramCredentials: credentials live in the replicated
// metadata, so a user created through one node logs in on every node, and
// bootstrap users exist once for the whole cluster.
func TestClusterScramCredentials(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, map[string]string{
		"listeners":                      "{listeners},SASL_PLAINTEXT://127.0.0.1:0",
		"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
		"sasl.enabled.mechanisms":        "SCRAM-SHA-256,SCRAM-SHA-512",
		"kbroker.scram.bootstrap.users":  "SCRAM-SHA-512=[name=admin,password=admin-secret]",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, c.nodes[0].srv.Addr()))
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "alice", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "alice-secret"}})
	if err != nil || res.Error() != nil {
		t.Fatalf("alter: %v %v", err, res.Error())
	}
	login := func(addr string, mech sasl.Mechanism) {
		t.Helper()
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err = pingErr(t, addr, kgo.SASL(mech)); err == nil {
				return
			}
		}
		t.Fatalf("login at %s: %v", addr, err)
	}
	for _, nd := range c.nodes {
		addr := nd.srv.ListenerAddr("SASL_PLAINTEXT")
		login(addr, scramMech("SCRAM-SHA-256", "alice", "alice-secret"))
		login(addr, scramMech("SCRAM-SHA-512", "admin", "admin-secret"))
		if err := pingErr(t, addr, kgo.SASL(scramMech("SCRAM-SHA-256", "alice", "wrong"))); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("bad password at node %d: %v", nd.id, err)
		}
	}
	d, err := kadm.NewClient(newClient(t, c.nodes[2].srv.Addr())).DescribeUserSCRAMs(ctx)
	if err != nil || len(d) != 2 {
		t.Fatalf("describe at node 3: %v %+v", err, d)
	}
	// A restarted node has them from its log and snapshot.
	c.stop(t, 2)
	c.restart(t, 2)
	login(c.nodes[1].srv.ListenerAddr("SASL_PLAINTEXT"), scramMech("SCRAM-SHA-256", "alice", "alice-secret"))
}

// unsecuredJWT is an unsecured JWS (alg none) as Kafka's
// OAuthBearerUnsecuredLoginCallbackHandler makes them.
func unsecuredJWT(sub string, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d,"iat":%d,"scope":"kafka"}`, sub, exp.Unix(), time.Now().Unix()))) + "."
}

func TestOAuthBearerUnsecured(t *testing.T) {
	t.Parallel()
	b := startBroker(t, map[string]string{
		"listeners":               "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
		"sasl.enabled.mechanisms": "OAUTHBEARER",
		"listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config": `org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredValidatorRequiredScope="kafka";`,
	})
	addr := b.ListenerAddr("SASL_PLAINTEXT")
	produceConsume(t, addr, kgo.SASL(oauth.Auth{Token: unsecuredJWT("alice", time.Now().Add(time.Hour))}.AsMechanism()))
	// An expired token gets Kafka's error JSON, which franz-go refuses.
	if err := pingErr(t, addr, kgo.SASL(oauth.Auth{Token: unsecuredJWT("alice", time.Now().Add(-time.Hour))}.AsMechanism())); err == nil {
		t.Fatal("expired token accepted")
	}
	// The session ends with the token (Kafka's credential lifetime).
	c := rawConn(t, addr)
	c.request(t, &kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "OAUTHBEARER"})
	tok := "n,,\x01auth=Bearer " + unsecuredJWT("bob", time.Now().Add(time.Minute)) + "\x01\x01"
	resp := c.request(t, &kmsg.SASLAuthenticateRequest{Version: 1, SASLAuthBytes: []byte(tok)}).(*kmsg.SASLAuthenticateResponse)
	if resp.ErrorCode != 0 || resp.SessionLifetimeMillis < 50_000 || resp.SessionLifetimeMillis > 60_000 {
		t.Fatalf("%+v", resp)
	}
	// A bad token: error JSON, the client's \x01, then the failure.
	c = rawConn(t, addr)
	c.request(t, &kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "OAUTHBEARER"})
	resp = c.request(t, &kmsg.SASLAuthenticateRequest{Version: 1, SASLAuthBytes: []byte("n,,\x01auth=Bearer " + unsecuredJWT("bob", time.Now().Add(-time.Minute)) + "\x01\x01")}).(*kmsg.SASLAuthenticateResponse)
	if resp.ErrorCode != 0 || string(resp.SASLAuthBytes) != `{"status":"invalid_token"}` {
		t.Fatalf("%+v", resp)
	}
	resp = c.request(t, &kmsg.SASLAuthenticateRequest{Version: 1, SASLAuthBytes: []byte{1}}).(*kmsg.SASLAuthenticateResponse)
	if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("%+v", resp)
	}
	c.wantClosed(t)
}
