package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// runScram runs franz-go's SCRAM client against scramServer.
func runScram(t *testing.T, mech sasl.Mechanism, creds func(string, string) (scramCredential, bool)) (string, error) {
	t.Helper()
	m, _ := scramMechanismByName(mech.Name())
	srv := newScramServer(m, creds)
	sess, msg, err := mech.Authenticate(context.Background(), "127.0.0.1:9092")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		resp, err := srv.evaluate(msg)
		if err != nil {
			return "", err
		}
		done, next, err := sess.Challenge(resp)
		if err != nil {
			t.Fatalf("client refused the server's message %q: %v", resp, err)
		}
		if done {
			if !srv.complete() {
				t.Fatal("client done, server not complete")
			}
			return srv.username(), nil
		}
		msg = next
	}
	t.Fatal("exchange did not finish")
	return "", nil
}

func TestScramServer(t *testing.T) {
	t.Parallel()
	for _, m := range scramMechanisms {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			cred, err := m.newScramCredential("alice-secret", 4096)
			if err != nil {
				t.Fatal(err)
			}
			creds := func(mech, user string) (scramCredential, bool) {
				return cred, mech == m.name && user == "alice"
			}
			auth := func(user, pass string) sasl.Mechanism {
				a := scram.Auth{User: user, Pass: pass}
				if m.name == "SCRAM-SHA-512" {
					return a.AsSha512Mechanism()
				}
				return a.AsSha256Mechanism()
			}
			if user, err := runScram(t, auth("alice", "alice-secret"), creds); err != nil || user != "alice" {
				t.Fatalf("good password: user %q, err %v", user, err)
			}
			var se *saslError
			if _, err := runScram(t, auth("alice", "wrong"), creds); !errors.As(err, &se) || se.clientVisible {
				t.Fatalf("bad password: %v, want a hidden failure", err)
			}
			if _, err := runScram(t, auth("bob", "x"), creds); !errors.As(err, &se) || !se.clientVisible || !strings.Contains(se.msg, "Invalid user credentials") {
				t.Fatalf("unknown user: %v", err)
			}
		})
	}
}

func TestScramClientFirst(t *testing.T) {
	t.Parallel()
	cf, err := parseScramClientFirst([]byte("n,,n=a=2Cb=3Dc,r=abc,tokenauth=true"))
	if err != nil {
		t.Fatal(err)
	}
	if cf.username != "a,b=c" || cf.nonce != "abc" || cf.extensions["tokenauth"] != "true" || cf.bare != "n=a=2Cb=3Dc,r=abc,tokenauth=true" {
		t.Fatalf("%+v", cf)
	}
	for _, bad := range []string{"", "n", "y,,n=a,r=b", "p=tls-unique,,n=a,r=b", "n,,n=,r=b", "n,,n=a=,r=b", "n,,n=a,r=", "n,,n=a,r=b c", "n,x,n=a,r=b", "n,,n=a,r=b,1=2"} {
		if _, err := parseScramClientFirst([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestPlainServer(t *testing.T) {
	t.Parallel()
	users := map[string]string{"alice": "alice-secret"}
	for _, tc := range []struct {
		token, msg string
	}{
		{"\x00alice\x00alice-secret", ""},
		{"alice\x00alice\x00alice-secret", ""},
		{"\x00alice\x00wrong", "Authentication failed: Invalid username or password"},
		{"\x00bob\x00alice-secret", "Authentication failed: Invalid username or password"},
		{"\x00\x00x", "Authentication failed: username not specified"},
		{"\x00alice\x00", "Authentication failed: password not specified"},
		{"bob\x00alice\x00alice-secret", "Authentication failed: Client requested an authorization id that is different from username"},
		{"garbage", "Invalid SASL/PLAIN response: expected 3 tokens, got 1"},
	} {
		p := &plainServer{users: users}
		_, err := p.evaluate([]byte(tc.token))
		if tc.msg == "" {
			if err != nil || !p.complete() || p.username() != "alice" {
				t.Errorf("%q: %v", tc.token, err)
			}
		} else if err == nil || err.Error() != tc.msg {
			t.Errorf("%q: %v, want %q", tc.token, err, tc.msg)
		}
	}
}

func TestParseJaasConfig(t *testing.T) {
	t.Parallel()
	es, err := parseJaasConfig(`org.apache.kafka.common.security.plain.PlainLoginModule required
		username="admin" password="admin-secret" // the broker's own
		user_admin="admin-secret" user_alice="alice \"secret\"" user_bob=bob-secret;`)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].loginModule != plainLoginModule || es[0].flag != "required" {
		t.Fatalf("%+v", es)
	}
	want := map[string]string{"username": "admin", "password": "admin-secret", "user_admin": "admin-secret", "user_alice": `alice "secret"`, "user_bob": "bob-secret"}
	for k, v := range want {
		if es[0].options[k] != v {
			t.Errorf("%s = %q, want %q", k, es[0].options[k], v)
		}
	}
	for _, bad := range []string{"", "Mod", "Mod required", "Mod bogus;", "Mod required a=;", `Mod required a="x;`, "Mod required a b;"} {
		if _, err := parseJaasConfig(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseScramBootstrapUsers(t *testing.T) {
	t.Parallel()
	us, err := parseScramBootstrapUsers(`SCRAM-SHA-256=[name=alice,password=alice-secret]; SCRAM-SHA-512=[name=bob,password="a,b]c",iterations=8192]`)
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 2 || us[0] != (ScramBootstrapUser{"SCRAM-SHA-256", "alice", "alice-secret", 4096}) || us[1] != (ScramBootstrapUser{"SCRAM-SHA-512", "bob", "a,b]c", 8192}) {
		t.Fatalf("%+v", us)
	}
	for _, bad := range []string{"SCRAM-SHA-1=[name=a,password=b]", "SCRAM-SHA-256=[name=a]", "SCRAM-SHA-256=[name=a,password=b", "SCRAM-SHA-256=[name=a,password=b,iterations=10]", "SCRAM-SHA-256=[x=1]"} {
		if _, err := parseScramBootstrapUsers(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestPrincipalMappingRules(t *testing.T) {
	t.Parallel()
	rules, err := parsePrincipalMappingRules(`RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT`)
	if err != nil {
		t.Fatal(err)
	}
	for dn, want := range map[string]string{
		"CN=Kafka-Client,OU=ServiceUsers,O=Org": "kafka-client",
		"CN=other,O=Org":                        "CN=other,O=Org",
	} {
		if got, err := mapPrincipal(rules, dn); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", dn, got, err, want)
		}
	}
}

func unsecuredToken(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(claims)) + "."
}

func TestOAuthBearerServer(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	exp := now.Add(time.Hour).Unix()
	opts, _ := parseOAuthValidatorOptions(map[string]string{"unsecuredValidatorRequiredScope": "kafka"})
	for _, tc := range []struct {
		name, first string
		user        string // empty: refused with an error JSON
	}{
		{"ok", "n,,\x01auth=Bearer " + unsecuredToken(fmt.Sprintf(`{"sub":"alice","exp":%d,"iat":%d,"scope":"kafka other"}`, exp, now.Unix())) + "\x01\x01", "alice"},
		{"ok with authzid and extension", "n,a=alice,\x01auth=Bearer " + unsecuredToken(fmt.Sprintf(`{"sub":"alice","exp":%d,"scope":["kafka"]}`, exp)) + "\x01ext=1\x01\x01", "alice"},
		{"expired", "n,,\x01auth=Bearer " + unsecuredToken(fmt.Sprintf(`{"sub":"alice","exp":%d,"scope":"kafka"}`, now.Add(-time.Hour).Unix())) + "\x01\x01", ""},
		{"no sub", "n,,\x01auth=Bearer " + unsecuredToken(fmt.Sprintf(`{"exp":%d,"scope":"kafka"}`, exp)) + "\x01\x01", ""},
		{"no scope", "n,,\x01auth=Bearer " + unsecuredToken(fmt.Sprintf(`{"sub":"alice","exp":%d}`, exp)) + "\x01\x01", ""},
		{"signed", "n,,\x01auth=Bearer " + unsecuredToken(fmt.Sprintf(`{"sub":"alice","exp":%d,"scope":"kafka"}`, exp)) + "sig\x01\x01", ""},
	} {
		o := &oauthServer{opts: opts, now: func() time.Time { return now }}
		resp, err := o.evaluate([]byte(tc.first))
		if tc.user != "" {
			if err != nil || !o.complete() || o.username() != tc.user || len(resp) != 0 {
				t.Errorf("%s: %q %v", tc.name, resp, err)
			}
			continue
		}
		if err != nil || o.complete() || !strings.Contains(string(resp), `"status"`) {
			t.Errorf("%s: want an error JSON, got %q %v", tc.name, resp, err)
			continue
		}
		if _, err := o.evaluate([]byte{1}); err == nil || !strings.Contains(err.Error(), "status") {
			t.Errorf("%s: after the client's \\x01: %v", tc.name, err)
		}
	}
	for _, bad := range []string{"", "n,,auth=Bearer x\x01\x01", "n,,\x01auth=Basic abc\x01\x01", "n,,\x01auth=Bearer a b\x01\x01", "y,,\x01auth=Bearer a\x01\x01", "n,,\x01\x01"} {
		o := &oauthServer{opts: opts, now: time.Now}
		if _, err := o.evaluate([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
