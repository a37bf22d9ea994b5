package broker

import (
	"testing"
	"time"

	"github.com/kbroker/kbroker/controller"
)

// The fuzzers check that the parsers of bytes from the network and of
// security settings never panic, whatever they are given.

func FuzzScramClientFirst(f *testing.F) {
	for _, s := range []string{"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", "n,a=user,n=user,r=abc,tokenauth=true", "", "n,,n==2C,r=\x00", "y,,n=a,r=b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if cf, err := parseScramClientFirst(b); err == nil && (cf.username == "" || cf.nonce == "") {
			t.Fatalf("accepted %q without a user or nonce", b)
		}
	})
}

func FuzzScramClientFinal(f *testing.F) {
	for _, s := range []string{"c=biws,r=abcdef,p=dHpbV3uJr9dxsO3Xk4F4ZXf0y3U=", "c=,r=,p=", "p=", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { parseScramClientFinal(b) })
}

// FuzzScramExchange feeds two arbitrary tokens to a server that knows the
// user: it must fail cleanly unless given a valid proof.
func FuzzScramExchange(f *testing.F) {
	m := scramMechanisms[0]
	cred, _ := m.newScramCredential("pw", 4096)
	f.Add([]byte("n,,n=user,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Fuzz(func(t *testing.T, first, final []byte) {
		s := newScramServer(m, func(string, string) (controller.ScramCredential, bool) { return cred, true })
		if _, err := s.evaluate(first); err != nil {
			return
		}
		if _, err := s.evaluate(final); err == nil {
			t.Fatalf("authenticated with %q", final)
		}
	})
}

func FuzzPlainToken(f *testing.F) {
	for _, s := range []string{"\x00alice\x00alice-secret", "a\x00b\x00c\x00d", "", "\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &plainServer{users: map[string]string{"alice": "alice-secret"}}
		if _, err := p.evaluate(b); err == nil && p.username() != "alice" {
			t.Fatalf("authenticated %q as %q", b, p.username())
		}
	})
}

func FuzzJaasConfig(f *testing.F) {
	for _, s := range []string{`org.apache.kafka.common.security.plain.PlainLoginModule required username="a" user_a="b";`, `a b c="\"`, "/* x", "//", ";;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { parseJaasConfig(s) })
}

func FuzzScramBootstrapUsers(f *testing.F) {
	f.Add(`SCRAM-SHA-256=[name=alice,password=alice-secret];SCRAM-SHA-512=[name=b,password="x"]`)
	f.Fuzz(func(t *testing.T, s string) { parseScramBootstrapUsers(s) })
}

// FuzzOAuthBearer feeds arbitrary initial responses to the unsecured
// OAUTHBEARER server: it never panics, and whatever it accepts names a
// principal.
func FuzzOAuthBearer(f *testing.F) {
	f.Add([]byte("n,,\x01auth=Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.\x01\x01"))
	f.Add([]byte("n,a=x,\x01auth=Bearer a.b.\x01k=v\x01\x01"))
	f.Add([]byte("\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o := &oauthServer{opts: oauthValidatorOptions{principalClaim: "sub", scopeClaim: "scope"}, now: time.Now}
		if _, err := o.evaluate(b); err == nil && o.complete() && o.username() == "" {
			t.Fatalf("accepted %q without a principal", b)
		}
	})
}
