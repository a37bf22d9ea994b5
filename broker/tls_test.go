package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// testCerts writes a CA, a server key+chain PEM for 127.0.0.1 and returns
// a client certificate for subject.
func testCerts(t *testing.T, subject pkix.Name) (caFile, serverFile string, pool *x509.CertPool, client tls.Certificate) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, subj pkix.Name, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: subj, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		pk, _ := x509.MarshalPKCS8PrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	sc, sk := issue(2, pkix.Name{CommonName: "127.0.0.1"}, x509.ExtKeyUsageServerAuth)
	cc, ck := issue(3, subject, x509.ExtKeyUsageClientAuth)
	caFile, serverFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem")
	os.WriteFile(caFile, caPEM, 0o600)
	os.WriteFile(serverFile, append(append(sk, sc...), caPEM...), 0o600)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	client, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	return caFile, serverFile, pool, client
}

// TestTLSPrincipal checks that a client certificate's distinguished name
// becomes the connection's principal (User:CN=...), through
// ssl.principal.mapping.rules when set.
func TestTLSPrincipal(t *testing.T) {
	t.Parallel()
	subject := pkix.Name{CommonName: "client", OrganizationalUnit: []string{"ServiceUsers"}, Organization: []string{"kbroker"}, Country: []string{"NL"}}
	caFile, serverFile, pool, client := testCerts(t, subject)
	for _, tc := range []struct {
		rules, want string
	}{
		{"", "User:CN=client,OU=ServiceUsers,O=kbroker,C=NL"},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/U,DEFAULT", "User:CLIENT"},
	} {
		props := map[string]string{
			"listeners": "SSL://127.0.0.1:0", "log.dirs": t.TempDir(), "http.listener": "127.0.0.1:0",
			"ssl.keystore.location": serverFile, "ssl.truststore.location": caFile, "ssl.client.auth": "required",
		}
		if tc.rules != "" {
			props["ssl.principal.mapping.rules"] = tc.rules
		}
		cfg, err := ParseConfig(props)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, nc, kmsg.NewPtrApiVersionsRequest())
		var got []string
		s.mu.Lock()
		for c := range s.conns {
			got = append(got, c.principal.String())
		}
		s.mu.Unlock()
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("rules %q: principals %v, want %s", tc.rules, got, tc.want)
		}
		nc.Close()
		s.Close()
	}
}

func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	caFile, serverFile, _, _ := testCerts(t, pkix.Name{CommonName: "c"})
	enc := filepath.Join(t.TempDir(), "enc.pem")
	os.WriteFile(enc, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), 0o600)
	for _, tc := range []struct {
		props map[string]string
		want  string
	}{
		{map[string]string{"ssl.keystore.type": "PKCS12", "ssl.keystore.location": serverFile}, "PKCS12 stores are not supported: kbroker reads PEM"},
		{map[string]string{"ssl.keystore.location": serverFile, "ssl.truststore.type": "JKS"}, "JKS stores are not supported"},
		{map[string]string{"ssl.keystore.location": caFile}, "no PRIVATE KEY"},
		{map[string]string{"ssl.keystore.location": enc}, "encrypted PKCS#8 keys are not supported"},
		{map[string]string{"ssl.keystore.location": serverFile, "ssl.client.auth": "required"}, "needs a truststore"},
		{map[string]string{"ssl.keystore.location": serverFile, "ssl.client.auth": "maybe"}, "invalid value"},
		{map[string]string{"ssl.keystore.location": serverFile, "ssl.enabled.protocols": "TLSv1"}, "not supported"},
	} {
		props := map[string]string{"listeners": "SSL://127.0.0.1:0"}
		for k, v := range tc.props {
			props[k] = v
		}
		if _, err := ParseConfig(props); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.props, err, tc.want)
		}
	}
	// Inline PEM and a per-listener override.
	key, _ := os.ReadFile(serverFile)
	if _, err := ParseConfig(map[string]string{"listeners": "EXTERNAL://127.0.0.1:0", "listener.security.protocol.map": "EXTERNAL:SSL",
		"listener.name.external.ssl.keystore.certificate.chain": string(key), "listener.name.external.ssl.keystore.key": string(key)}); err != nil {
		t.Fatal(err)
	}
}

func TestInterBrokerStaysPlaintext(t *testing.T) {
	t.Parallel()
	_, serverFile, _, _ := testCerts(t, pkix.Name{CommonName: "c"})
	base := map[string]string{
		"node.id": "1", "listeners": "SSL://127.0.0.1:9093,PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9094",
		"controller.listener.names": "CONTROLLER", "controller.quorum.voters": "1@127.0.0.1:9094,2@127.0.0.1:9095",
		"listener.security.protocol.map": "SSL:SSL,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT", "ssl.keystore.location": serverFile,
	}
	if _, err := ParseConfig(base); err == nil || !strings.Contains(err.Error(), "not PLAINTEXT") {
		t.Fatalf("SSL first (the inter-broker listener): %v", err)
	}
	base["inter.broker.listener.name"] = "PLAINTEXT"
	if _, err := ParseConfig(base); err != nil {
		t.Fatal(err)
	}
	delete(base, "inter.broker.listener.name")
	base["security.inter.broker.protocol"] = "SSL"
	if _, err := ParseConfig(base); err == nil || !strings.Contains(err.Error(), "security.inter.broker.protocol") {
		t.Fatal(err)
	}
}
