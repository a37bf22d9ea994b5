package main

// The TLS figure: one kbroker process with a PLAINTEXT and an SSL listener,
// the same produce and consume runs through each, alternating, so the cost
// of TLS (and of losing sendfile on fetch, which TLS forbids) shows against
// plaintext on the same broker in the same run.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TLSResult is the TLS figure: median throughput per listener.
type TLSResult struct {
	Runs                  int     `json:"runs"`
	PlainProduceRecPerSec float64 `json:"plain_produce_rec_per_sec"`
	PlainConsumeRecPerSec float64 `json:"plain_consume_rec_per_sec"`
	TLSProduceRecPerSec   float64 `json:"tls_produce_rec_per_sec"`
	TLSConsumeRecPerSec   float64 `json:"tls_consume_rec_per_sec"`
	PlainProduceMBPerSec  float64 `json:"plain_produce_mb_per_sec"`
	PlainConsumeMBPerSec  float64 `json:"plain_consume_mb_per_sec"`
	TLSProduceMBPerSec    float64 `json:"tls_produce_mb_per_sec"`
	TLSConsumeMBPerSec    float64 `json:"tls_consume_mb_per_sec"`
	Error                 string  `json:"error,omitempty"`
}

// writeTestCerts writes a throw-away CA and a server key+chain for
// 127.0.0.1 into dir, and returns the keystore path and a pool with the CA.
func writeTestCerts(dir string) (string, *x509.CertPool, error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kbroker bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return "", nil, err
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	pemFile := filepath.Join(dir, "bench-server.pem")
	out := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if err := os.WriteFile(pemFile, out, 0o600); err != nil {
		return "", nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pemFile, pool, nil
}

// benchTLS runs the TLS figure against the kbroker binary bin.
func benchTLS(ctx context.Context, cfg config, bin, tmp string, logf func(string, ...any)) *TLSResult {
	res := &TLSResult{Runs: cfg.tlsRuns}
	fail := func(err error) *TLSResult { res.Error = err.Error(); logf("TLS figure failed: %v", err); return res }
	keystore, pool, err := writeTestCerts(tmp)
	if err != nil {
		return fail(err)
	}
	plainPort, err := freePort()
	if err != nil {
		return fail(err)
	}
	tlsPort, err := freePort()
	if err != nil {
		return fail(err)
	}
	dataDir, err := os.MkdirTemp(tmp, "kbroker-tls-data-")
	if err != nil {
		return fail(err)
	}
	plainAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(plainPort))
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	args := []string{
		"--data-dir", dataDir,
		"--override", fmt.Sprintf("listeners=PLAINTEXT://%s,SSL://%s", plainAddr, tlsAddr),
		"--override", "ssl.keystore.type=PEM",
		"--override", "ssl.keystore.location=" + keystore,
		"--override", "http.listener=127.0.0.1:0",
	}
	c, err := startProc("kbroker-tls", bin, args, plainAddr, dataDir, filepath.Join(tmp, "kbroker-tls.log"))
	if err != nil {
		return fail(err)
	}
	defer c.stop()
	sctx, cancel := context.WithTimeout(ctx, cfg.phaseTimeout)
	_, err = waitReady(sctx, c)
	cancel()
	if err != nil {
		return fail(err)
	}
	compression, _ := codec(cfg.compression)
	values := payloads(cfg.recordSize, 1024)
	dialTLS := kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})

	var plainP, plainC, tlsP, tlsC []throughput
	one := func(run int, name, addr string, extra []kgo.Opt, prod, cons *[]throughput) error {
		topic := fmt.Sprintf("bench-%s-%d", name, run)
		pctx, cancel := context.WithTimeout(ctx, cfg.phaseTimeout)
		defer cancel()
		if err := createTopic(pctx, plainAddr, topic, 6); err != nil {
			return err
		}
		p, err := produceThroughput(pctx, topic, cfg.records, values, append(producerOpts(pctx, addr, compression, false), extra...))
		if err != nil {
			return fmt.Errorf("%s produce: %w", name, err)
		}
		cctx, cancel2 := context.WithTimeout(ctx, cfg.phaseTimeout)
		defer cancel2()
		cn, err := consumeThroughput(cctx, addr, topic, cfg.records, extra...)
		if err != nil {
			return fmt.Errorf("%s consume: %w", name, err)
		}
		*prod, *cons = append(*prod, p), append(*cons, cn)
		logf("TLS figure run %d %s: produce %.0f rec/s, consume %.0f rec/s", run, name, p.RecordsPerSec(), cn.RecordsPerSec())
		return nil
	}
	for run := 1; run <= cfg.tlsRuns; run++ {
		if err := one(run, "plaintext", plainAddr, nil, &plainP, &plainC); err != nil {
			return fail(err)
		}
		if err := one(run, "tls", tlsAddr, []kgo.Opt{dialTLS}, &tlsP, &tlsC); err != nil {
			return fail(err)
		}
	}
	med := func(ts []throughput) (float64, float64) {
		var recs, mbs []float64
		for _, t := range ts {
			recs, mbs = append(recs, t.RecordsPerSec()), append(mbs, t.MBPerSec())
		}
		return median(recs), median(mbs)
	}
	res.PlainProduceRecPerSec, res.PlainProduceMBPerSec = med(plainP)
	res.PlainConsumeRecPerSec, res.PlainConsumeMBPerSec = med(plainC)
	res.TLSProduceRecPerSec, res.TLSProduceMBPerSec = med(tlsP)
	res.TLSConsumeRecPerSec, res.TLSConsumeMBPerSec = med(tlsC)
	return res
}

func printTLS(w io.Writer, r *TLSResult, cfg config) {
	fmt.Fprintf(w, "\nkbroker TLS vs plaintext (one process, PLAINTEXT and SSL listeners, %d records of %d bytes, %s, median of %d runs)\n",
		cfg.records, cfg.recordSize, cfg.compression, r.Runs)
	if r.Error != "" {
		fmt.Fprintf(w, "  failed: %s\n", r.Error)
		return
	}
	fmt.Fprintf(w, "  %-10s %14s %10s %14s %10s\n", "listener", "produce rec/s", "MB/s", "consume rec/s", "MB/s")
	fmt.Fprintf(w, "  %-10s %14.0f %10.1f %14.0f %10.1f\n", "PLAINTEXT", r.PlainProduceRecPerSec, r.PlainProduceMBPerSec, r.PlainConsumeRecPerSec, r.PlainConsumeMBPerSec)
	fmt.Fprintf(w, "  %-10s %14.0f %10.1f %14.0f %10.1f\n", "SSL", r.TLSProduceRecPerSec, r.TLSProduceMBPerSec, r.TLSConsumeRecPerSec, r.TLSConsumeMBPerSec)
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	fmt.Fprintf(w, "  %-10s %14.2fx %10s %14.2fx\n", "SSL/PLAIN", ratio(r.TLSProduceRecPerSec, r.PlainProduceRecPerSec), "", ratio(r.TLSConsumeRecPerSec, r.PlainConsumeRecPerSec))
}
