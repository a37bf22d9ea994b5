package broker

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/kbroker/kbroker/controller"
)

// SCRAM (RFC 5802, RFC 7677) as Kafka's ScramSaslServer and ScramFormatter
// do it: credentials are stored as salt, StoredKey, ServerKey and
// iterations, never the password.

// scramMechanism is one SCRAM mechanism, with Kafka's ScramMechanism type
// (the int8 of the SCRAM credential APIs) and minimum iterations.
type scramMechanism struct {
	name   string
	typ    int8
	hash   func() hash.Hash
	keyLen int
}

var scramMechanisms = []scramMechanism{
	{"SCRAM-SHA-256", 1, sha256.New, sha256.Size},
	{"SCRAM-SHA-512", 2, sha512.New, sha512.Size},
}

const (
	scramMinIterations = 4096  // ScramMechanism.minIterations
	scramMaxIterations = 16384 // ScramControlManager.MAX_ITERATIONS
)

func scramMechanismByName(name string) (scramMechanism, bool) {
	for _, m := range scramMechanisms {
		if m.name == name {
			return m, true
		}
	}
	return scramMechanism{}, false
}

func scramMechanismByType(t int8) (scramMechanism, bool) {
	for _, m := range scramMechanisms {
		if m.typ == t {
			return m, true
		}
	}
	return scramMechanism{}, false
}

// scramCredential is Kafka's ScramCredential (salt, StoredKey, ServerKey,
// iterations), the controller's type so that a cluster replicates it.
type scramCredential = controller.ScramCredential

func (m scramMechanism) hmac(key, msg []byte) []byte {
	h := hmac.New(m.hash, key)
	h.Write(msg)
	return h.Sum(nil)
}

func (m scramMechanism) h(b []byte) []byte {
	h := m.hash()
	h.Write(b)
	return h.Sum(nil)
}

// saltedPassword is Hi(password, salt, i) of RFC 5802.
func (m scramMechanism) saltedPassword(password string, salt []byte, iterations int) ([]byte, error) {
	return pbkdf2.Key(m.hash, password, salt, iterations, m.keyLen)
}

// newScramCredential salts password with a random salt.
func (m scramMechanism) newScramCredential(password string, iterations int) (scramCredential, error) {
	salt := make([]byte, 32)
	rand.Read(salt)
	salted, err := m.saltedPassword(password, salt, iterations)
	if err != nil {
		return scramCredential{}, err
	}
	return controller.NewScramCredential(m.typ, salted, salt, int32(iterations))
}

// saslError is a failed authentication. A SaslAuthenticationException in
// Kafka (clientVisible) reaches the client with its message; any other
// failure is answered with Kafka's generic message, so that it does not
// tell whether a user exists.
type saslError struct {
	msg           string
	clientVisible bool
}

func (e *saslError) Error() string { return e.msg }

func saslAuthFailed(msg string) error { return &saslError{msg: msg, clientVisible: true} }
func saslFailed(format string, args ...any) error {
	return &saslError{msg: fmt.Sprintf(format, args...)}
}

// scramClientFirst is the client-first-message: gs2 header, user name and
// nonce, and the extensions Kafka reads (tokenauth).
type scramClientFirst struct {
	gs2Header  string // "n,," or "n,a=authzid,"
	authzid    string
	username   string
	nonce      string
	extensions map[string]string
	bare       string // client-first-message-bare, for AuthMessage
}

// decodeSaslName undoes RFC 5802's =2C and =3D escapes; any other '=' or
// a ',' makes the name invalid.
func decodeSaslName(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ',' || c == 0:
			return "", false
		case c == '=':
			switch {
			case strings.HasPrefix(s[i:], "=2C"):
				b.WriteByte(',')
			case strings.HasPrefix(s[i:], "=3D"):
				b.WriteByte('=')
			default:
				return "", false
			}
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// printable is RFC 5802's printable: %x21-2B / %x2D-7E.
func printable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

func parseScramExtensions(parts []string) (map[string]string, bool) {
	ext := map[string]string{}
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, false
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return nil, false
			}
		}
		ext[k] = v
	}
	return ext, true
}

// parseScramClientFirst parses "n,[a=authzid],n=user,r=nonce[,ext=value]*".
// Channel binding ("p=", "y") is refused: Kafka offers no -PLUS mechanism.
func parseScramClientFirst(msg []byte) (*scramClientFirst, error) {
	s := string(msg)
	parts := strings.Split(s, ",")
	if len(parts) < 4 || parts[0] != "n" {
		return nil, saslFailed("Invalid SCRAM client first message format")
	}
	cf := &scramClientFirst{}
	if parts[1] != "" {
		a, ok := strings.CutPrefix(parts[1], "a=")
		if !ok {
			return nil, saslFailed("Invalid SCRAM client first message format")
		}
		if cf.authzid, ok = decodeSaslName(a); !ok {
			return nil, saslFailed("Invalid SCRAM client first message format")
		}
	}
	cf.gs2Header = parts[0] + "," + parts[1] + ","
	u, ok := strings.CutPrefix(parts[2], "n=")
	if !ok {
		return nil, saslFailed("Invalid SCRAM client first message format")
	}
	if cf.username, ok = decodeSaslName(u); !ok {
		return nil, saslFailed("Invalid SCRAM client first message format")
	}
	if cf.nonce, ok = strings.CutPrefix(parts[3], "r="); !ok || !printable(cf.nonce) {
		return nil, saslFailed("Invalid SCRAM client first message format")
	}
	if cf.extensions, ok = parseScramExtensions(parts[4:]); !ok {
		return nil, saslFailed("Invalid SCRAM client first message format")
	}
	cf.bare = s[len(cf.gs2Header):]
	return cf, nil
}

// scramClientFinal is the client-final-message.
type scramClientFinal struct {
	channelBinding []byte
	nonce          string
	proof          []byte
	withoutProof   string // for AuthMessage
}

// parseScramClientFinal parses "c=base64,r=nonce[,ext=value]*,p=base64".
func parseScramClientFinal(msg []byte) (*scramClientFinal, error) {
	s := string(msg)
	bad := saslFailed("Invalid SCRAM client final message format")
	i := strings.LastIndex(s, ",p=")
	if i < 0 {
		return nil, bad
	}
	cf := &scramClientFinal{withoutProof: s[:i]}
	var err error
	if cf.proof, err = base64.StdEncoding.DecodeString(s[i+3:]); err != nil || len(cf.proof) == 0 {
		return nil, bad
	}
	parts := strings.Split(cf.withoutProof, ",")
	if len(parts) < 2 {
		return nil, bad
	}
	c, ok := strings.CutPrefix(parts[0], "c=")
	if !ok {
		return nil, bad
	}
	if cf.channelBinding, err = base64.StdEncoding.DecodeString(c); err != nil {
		return nil, bad
	}
	if cf.nonce, ok = strings.CutPrefix(parts[1], "r="); !ok || !printable(cf.nonce) {
		return nil, bad
	}
	if _, ok := parseScramExtensions(parts[2:]); !ok {
		return nil, bad
	}
	return cf, nil
}

// scramServer is one SCRAM exchange, server side (Kafka's ScramSaslServer):
// client-first → server-first, client-final → server-final.
type scramServer struct {
	mech        scramMechanism
	credentials func(mechanism, user string) (scramCredential, bool)

	step        int // 0: want client-first; 1: want client-final; 2: done
	clientFirst *scramClientFirst
	serverFirst string
	nonce       string // client nonce + server nonce
	cred        scramCredential
	user        string
}

func newScramServer(mech scramMechanism, credentials func(mechanism, user string) (scramCredential, bool)) *scramServer {
	return &scramServer{mech: mech, credentials: credentials}
}

func (s *scramServer) complete() bool   { return s.step == 2 }
func (s *scramServer) username() string { return s.user }

func (s *scramServer) evaluate(token []byte) ([]byte, error) {
	switch s.step {
	case 0:
		cf, err := parseScramClientFirst(token)
		if err != nil {
			return nil, err
		}
		if cf.authzid != "" && cf.authzid != cf.username {
			return nil, saslAuthFailed("Authentication failed: Client requested an authorization id that is different from username")
		}
		if strings.EqualFold(cf.extensions["tokenauth"], "true") {
			// Delegation tokens (KIP-48) are not supported.
			return nil, saslAuthFailed("Authentication failed: Invalid user credentials")
		}
		cred, ok := s.credentials(s.mech.name, cf.username)
		if !ok {
			return nil, saslAuthFailed("Authentication failed: Invalid user credentials")
		}
		if cred.Iterations < scramMinIterations {
			return nil, saslFailed("Iterations %d is less than the minimum %d for %s", cred.Iterations, scramMinIterations, s.mech.name)
		}
		var rnd [24]byte
		rand.Read(rnd[:])
		s.clientFirst, s.cred, s.user = cf, cred, cf.username
		s.nonce = cf.nonce + base64.RawURLEncoding.EncodeToString(rnd[:])
		s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) + ",i=" + strconv.Itoa(int(cred.Iterations))
		s.step = 1
		return []byte(s.serverFirst), nil
	case 1:
		cf, err := parseScramClientFinal(token)
		if err != nil {
			return nil, err
		}
		if cf.nonce != s.nonce {
			return nil, saslFailed("Invalid client nonce in the final client message.")
		}
		if string(cf.channelBinding) != s.clientFirst.gs2Header {
			return nil, saslFailed("Invalid channel binding in the final client message.")
		}
		authMessage := []byte(s.clientFirst.bare + "," + s.serverFirst + "," + cf.withoutProof)
		clientSignature := s.mech.hmac(s.cred.StoredKey, authMessage)
		if len(cf.proof) != len(clientSignature) {
			return nil, saslFailed("Invalid client credentials")
		}
		clientKey := make([]byte, len(clientSignature))
		subtle.XORBytes(clientKey, cf.proof, clientSignature)
		if subtle.ConstantTimeCompare(s.mech.h(clientKey), s.cred.StoredKey) != 1 {
			return nil, saslFailed("Invalid client credentials")
		}
		s.step = 2
		return []byte("v=" + base64.StdEncoding.EncodeToString(s.mech.hmac(s.cred.ServerKey, authMessage))), nil
	}
	return nil, errors.New("SCRAM exchange already complete")
}

// ScramBootstrapUser is one entry of kbroker.scram.bootstrap.users, in
// kafka-storage format --add-scram's syntax:
// SCRAM-SHA-256=[name=alice,password=alice-secret(,iterations=8192)].
type ScramBootstrapUser struct {
	Mechanism  string
	Name       string
	Password   string
	Iterations int
}

// parseScramBootstrapUsers parses entries separated by ';'. Values may be
// double-quoted (to hold ',' or ']').
func parseScramBootstrapUsers(v string) ([]ScramBootstrapUser, error) {
	var out []ScramBootstrapUser
	rest := strings.TrimSpace(v)
	for rest != "" {
		mech, body, ok := strings.Cut(rest, "=[")
		mech = strings.ToUpper(strings.TrimSpace(mech))
		if !ok {
			return nil, fmt.Errorf("entry %q is not MECHANISM=[name=...,password=...]", rest)
		}
		if _, ok := scramMechanismByName(mech); !ok {
			return nil, fmt.Errorf("unknown SCRAM mechanism %q (want SCRAM-SHA-256, SCRAM-SHA-512)", mech)
		}
		u := ScramBootstrapUser{Mechanism: mech, Iterations: scramMinIterations}
		// key=value pairs up to the closing ']'.
		i := 0
		for {
			eq := strings.IndexByte(body[i:], '=')
			if eq < 0 {
				return nil, fmt.Errorf("entry for %s: unterminated [", mech)
			}
			key := strings.TrimSpace(body[i : i+eq])
			i += eq + 1
			var val string
			if i < len(body) && body[i] == '"' {
				end := strings.IndexByte(body[i+1:], '"')
				if end < 0 {
					return nil, fmt.Errorf("entry for %s: unterminated quote", mech)
				}
				val = body[i+1 : i+1+end]
				i += end + 2
			} else {
				end := strings.IndexAny(body[i:], ",]")
				if end < 0 {
					return nil, fmt.Errorf("entry for %s: unterminated [", mech)
				}
				val = strings.TrimSpace(body[i : i+end])
				i += end
			}
			switch key {
			case "name":
				u.Name = val
			case "password":
				u.Password = val
			case "iterations":
				n, err := strconv.Atoi(val)
				if err != nil || n < scramMinIterations || n > scramMaxIterations {
					return nil, fmt.Errorf("entry for %s: iterations %q not in [%d, %d]", mech, val, scramMinIterations, scramMaxIterations)
				}
				u.Iterations = n
			default:
				return nil, fmt.Errorf("entry for %s: unknown key %q (want name, password, iterations)", mech, key)
			}
			if i >= len(body) {
				return nil, fmt.Errorf("entry for %s: unterminated [", mech)
			}
			if body[i] == ']' {
				i++
				break
			}
			if body[i] != ',' {
				return nil, fmt.Errorf("entry for %s: want ',' or ']' after %s", mech, key)
			}
			i++
		}
		if u.Name == "" || u.Password == "" {
			return nil, fmt.Errorf("entry for %s: name and password are required", mech)
		}
		out = append(out, u)
		rest = strings.TrimSpace(body[i:])
		if rest != "" {
			if rest[0] != ';' {
				return nil, fmt.Errorf("want ';' between entries, found %q", rest)
			}
			rest = strings.TrimSpace(rest[1:])
		}
	}
	return out, nil
}
