// Package librdkafka runs librdkafka (through confluent-kafka-go, which
// bundles a static librdkafka; cgo) against an in-process kbroker. It is
// a module of its own so that cgo stays out of kbroker's.
package librdkafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/kbroker/kbroker/broker"
)

// writeCerts writes a CA and a server key+chain for 127.0.0.1/localhost
// into dir, generated for this run.
func writeCerts(t *testing.T, dir string) (caFile, serverFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kbroker test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	server := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	caFile, serverFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(serverFile, append(server, caPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, serverFile
}

// TestSASLSSLScram produces and consumes with librdkafka over SASL_SSL
// with SCRAM-SHA-256, verifying the broker's certificate and host name,
// and checks that a wrong password is refused.
func TestSASLSSLScram(t *testing.T) {
	dir := t.TempDir()
	caFile, serverFile := writeCerts(t, dir)
	cfg, err := broker.ParseConfig(map[string]string{
		"listeners":                     "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
		"log.dirs":                      filepath.Join(dir, "data"),
		"http.listener":                 "",
		"ssl.keystore.type":             "PEM",
		"ssl.keystore.location":         serverFile,
		"sasl.enabled.mechanisms":       "SCRAM-SHA-256",
		"kbroker.scram.bootstrap.users": "SCRAM-SHA-256=[name=rdkafka,password=rdkafka-secret]",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := broker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	addr := srv.ListenerAddr("SASL_SSL")

	conf := func(pass string) kafka.ConfigMap {
		m := kafka.ConfigMap{
			"bootstrap.servers": addr,
			"security.protocol": "SASL_SSL",
			"sasl.mechanisms":   "SCRAM-SHA-256",
			"sasl.username":     "rdkafka",
			"sasl.password":     pass,
			"ssl.ca.location":   caFile,
		}
		if d := os.Getenv("RDKAFKA_DEBUG"); d != "" { // e.g. security,broker,protocol
			m["debug"] = d
		}
		return m
	}
	const topic, n = "librdkafka-sasl-ssl", 100
	pc := conf("rdkafka-secret")
	pc["acks"] = "all"
	p, err := kafka.NewProducer(&pc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tp := topic
	delivered := make(chan kafka.Event, n)
	for i := range n {
		if err := p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &tp, Partition: kafka.PartitionAny}, Value: []byte(fmt.Sprint(i))}, delivered); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case ev := <-delivered:
			if m := ev.(*kafka.Message); m.TopicPartition.Error != nil {
				t.Fatalf("delivery %d: %v", i, m.TopicPartition.Error)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d delivered", i, n)
		}
	}

	cc := conf("rdkafka-secret")
	cc["group.id"] = "librdkafka-test"
	cc["auto.offset.reset"] = "earliest"
	c, err := kafka.NewConsumer(&cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(topic, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for got := 0; got < n; {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of %d", got, n)
		}
		m, err := c.ReadMessage(time.Second)
		if err != nil {
			if kerr, ok := err.(kafka.Error); ok && kerr.IsTimeout() {
				continue
			}
			t.Fatalf("consume: %v", err)
		}
		if string(m.Value) != fmt.Sprint(got) {
			t.Fatalf("message %d is %q", got, m.Value)
		}
		got++
	}

	bad := conf("wrong")
	ac, err := kafka.NewAdminClient(&bad)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if _, err := ac.GetMetadata(nil, true, 10_000); err == nil {
		t.Fatal("wrong password accepted")
	} else {
		t.Logf("wrong password: %v", err)
	}
}
