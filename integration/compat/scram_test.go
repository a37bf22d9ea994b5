package compat

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kbroker/kbroker/broker"
)

// franzSCRAM is sarama's SCRAMClient on franz-go's SCRAM client code: the
// first Step returns the client-first message, each later one answers the
// server's.
type franzSCRAM struct {
	sha512 bool
	sess   sasl.Session
	first  []byte
	done   bool
}

func (c *franzSCRAM) Begin(user, pass, authzID string) error {
	a := scram.Auth{User: user, Pass: pass, Zid: authzID}
	mech := a.AsSha256Mechanism()
	if c.sha512 {
		mech = a.AsSha512Mechanism()
	}
	var err error
	c.sess, c.first, err = mech.Authenticate(context.Background(), "")
	return err
}

func (c *franzSCRAM) Step(challenge string) (string, error) {
	if c.first != nil {
		first := c.first
		c.first = nil
		return string(first), nil
	}
	done, msg, err := c.sess.Challenge([]byte(challenge))
	c.done = done
	return string(msg), err
}

func (c *franzSCRAM) Done() bool { return c.done }

// TestSaramaSCRAM produces and consumes with sarama over a SASL_PLAINTEXT
// listener with SCRAM-SHA-512, with SaslHandshake v1 (SaslAuthenticate
// requests) and v0 (bare tokens), and checks that a wrong password fails.
func TestSaramaSCRAM(t *testing.T) {
	cfg, err := broker.ParseConfig(map[string]string{
		"listeners":                     "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
		"log.dirs":                      t.TempDir(),
		"http.listener":                 "",
		"sasl.enabled.mechanisms":       "SCRAM-SHA-512",
		"kbroker.scram.bootstrap.users": "SCRAM-SHA-512=[name=sarama,password=sarama-secret]",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := broker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	addr := srv.ListenerAddr("SASL_PLAINTEXT")

	saslConfig := func(version int16, pass string) *sarama.Config {
		c := newConfig("")
		c.Net.SASL.Enable = true
		c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		c.Net.SASL.Version = version
		c.Net.SASL.User, c.Net.SASL.Password = "sarama", pass
		c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &franzSCRAM{sha512: true} }
		c.Metadata.Retry.Max = 0
		// sarama sends no ApiVersions before a v0 handshake.
		c.ApiVersionsRequest = version != sarama.SASLHandshakeV0
		return c
	}
	for _, version := range []int16{sarama.SASLHandshakeV1, sarama.SASLHandshakeV0} {
		t.Run(fmt.Sprintf("handshake v%d", version), func(t *testing.T) {
			topic := fmt.Sprintf("sarama-scram-v%d", version)
			c := saslConfig(version, "sarama-secret")
			p, err := sarama.NewSyncProducer([]string{addr}, c)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for i := range 10 {
				if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
					t.Fatalf("produce %d: %v", i, err)
				}
			}
			cons, err := sarama.NewConsumer([]string{addr}, c)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			for i := range 10 {
				select {
				case m := <-pc.Messages():
					if string(m.Value) != fmt.Sprint(i) {
						t.Fatalf("message %d is %q", i, m.Value)
					}
				case <-time.After(15 * time.Second):
					t.Fatalf("no message %d", i)
				}
			}
			if _, err := sarama.NewClient([]string{addr}, saslConfig(version, "wrong")); err == nil {
				t.Fatal("wrong password accepted")
			}
		})
	}
}
