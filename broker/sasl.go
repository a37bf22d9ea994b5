package broker

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"time"

	"github.com/kbroker/kbroker/protocol"
)

// SASL on a connection, as Kafka's SaslServerAuthenticator runs it:
//
//	handshake   ApiVersions, SaslHandshake      → authenticate (mechanism chosen)
//	authenticate SaslAuthenticate ...           → complete (principal set)
//	complete    any request; SaslHandshake starts a re-authentication (KIP-368)
//
// Before completion only ApiVersions, SaslHandshake and SaslAuthenticate are
// served; anything else closes the connection. A failed authentication is
// answered (SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM) and the
// connection is closed after the response.

type saslState int

const (
	saslHandshake saslState = iota
	saslAuthenticate
	saslComplete
)

// saslServer is one mechanism's server side (javax.security.sasl.SaslServer).
type saslServer interface {
	// evaluate takes a client token and returns the server's; errors are
	// *saslError for the client to see, or plain errors (malformed input).
	evaluate(token []byte) ([]byte, error)
	complete() bool
	username() string
}

// saslConn is a SASL listener connection's authentication state.
type saslConn struct {
	state     saslState
	mechanism string
	server    saslServer
	// rawTokens: the client sent SaslHandshake v0, so its tokens come as
	// bare size-prefixed frames, not in SaslAuthenticate requests.
	rawTokens bool
	// supportsReauth: the client sent SaslAuthenticate v1+ (Kafka's
	// connectedClientSupportsReauthentication); only such sessions expire.
	supportsReauth bool
	// expires is when the session ends (connections.max.reauth.ms, or
	// the credential's expiry), zero for never; lifetime is its length,
	// SessionLifetimeMs.
	expires  time.Time
	lifetime time.Duration
	// reauth is set while a re-authentication runs: the mechanism and
	// principal it must keep.
	reauth          bool
	reauthMechanism string
	reauthPrincipal kafkaPrincipal
}

// allowed reports whether a request may be served in the current state:
// everything once authenticated (and not re-authenticating), else only the
// authentication APIs Kafka's authenticator reads.
func (sc *saslConn) allowed(key int16) bool {
	switch sc.state {
	case saslComplete:
		return true
	case saslHandshake:
		return key == protocol.ApiVersionsKey || key == protocol.SaslHandshakeKey
	default:
		return key == protocol.SaslAuthenticateKey
	}
}

// newSaslServer starts mechanism for the connection's listener.
func (c *conn) newSaslServer(mechanism string) saslServer {
	switch mechanism {
	case "PLAIN":
		return &plainServer{users: c.security().plainUsers}
	case "OAUTHBEARER":
		return &oauthServer{opts: c.security().oauth, now: time.Now}
	}
	m, _ := scramMechanismByName(mechanism)
	return newScramServer(m, c.s.scramCredential)
}

func (c *conn) security() *listenerSecurity {
	if ls := c.s.cfg.listenerSecurity[c.listener.Name]; ls != nil {
		return ls
	}
	return &listenerSecurity{}
}

// finishSasl sets the principal once the mechanism completes, and the
// session's expiry. It returns a failure for a re-authentication that
// changes the principal.
func (c *conn) finishSasl(now time.Time) error {
	sc := c.sasl
	p := kafkaPrincipal{Type: "User", Name: sc.server.username()}
	if sc.reauth && p != sc.reauthPrincipal {
		return saslAuthFailed("Cannot change principals during re-authentication from " + sc.reauthPrincipal.String() + ": " + p.String())
	}
	c.principal = p
	sc.state, sc.reauth = saslComplete, false
	// The session lasts connections.max.reauth.ms, and no longer than
	// the credential (an OAUTHBEARER token's exp), as Kafka's
	// calcCompletionTimesAndReturnSessionLifetimeMs computes it; only
	// clients that can re-authenticate get one.
	sc.expires, sc.lifetime = time.Time{}, 0
	d := c.security().maxReauth[sc.mechanism]
	limited := d > 0
	if ce, ok := sc.server.(interface{ credentialExpiry() time.Time }); ok && !ce.credentialExpiry().IsZero() {
		if left := max(ce.credentialExpiry().Sub(now), 0); !limited || left < d {
			d, limited = left, true
		}
	}
	if limited && sc.supportsReauth {
		sc.expires, sc.lifetime = now.Add(d), d
	}
	return nil
}

// sessionLifetime is SessionLifetimeMs: connections.max.reauth.ms for a
// client that re-authenticates, else 0.
func (c *conn) sessionLifetime() int64 { return c.sasl.lifetime.Milliseconds() }

// handleRawSaslToken runs a token of a SaslHandshake v0 client. Kafka
// answers with the bare server token, and on failure closes without a
// response (there is no frame for an error).
func (c *conn) handleRawSaslToken(token []byte) bool {
	sc := c.sasl
	resp, err := sc.server.evaluate(token)
	if err != nil {
		c.s.logger.Info("SASL authentication failed", "remote", c.nc.RemoteAddr(), "listener", c.listener.Name, "mechanism", sc.mechanism, "err", err)
		time.Sleep(c.s.cfg.FailedAuthenticationDelay) // before the close, as after a SaslAuthenticate failure
		return false
	}
	if sc.server.complete() {
		if err := c.finishSasl(time.Now()); err != nil {
			return false
		}
		sc.rawTokens = false
		c.s.logger.Debug("SASL authenticated", "remote", c.nc.RemoteAddr(), "principal", c.principal.String())
	}
	// Every step answers, with an empty token if need be (PLAIN's
	// evaluateResponse returns an empty array, which Kafka sends).
	out := make([]byte, 4+len(resp))
	binary.BigEndian.PutUint32(out, uint32(len(resp)))
	copy(out[4:], resp)
	_, err = c.nc.Write(out)
	return err == nil
}

// tlsPrincipal is the principal of a TLS connection: the client
// certificate's distinguished name (RFC 2253, as Java's X500Principal
// writes it) through ssl.principal.mapping.rules, or ANONYMOUS without a
// certificate (Kafka's DefaultKafkaPrincipalBuilder).
func tlsPrincipal(state tls.ConnectionState, rules []sslPrincipalRule) (kafkaPrincipal, error) {
	if len(state.PeerCertificates) == 0 {
		return anonymousPrincipal, nil
	}
	name, err := mapPrincipal(rules, certificateDN(state.PeerCertificates[0]))
	if err != nil {
		return kafkaPrincipal{}, err
	}
	return kafkaPrincipal{Type: "User", Name: name}, nil
}

func certificateDN(cert *x509.Certificate) string {
	return cert.Subject.ToRDNSequence().String()
}

// errSaslClose closes the connection after the response is written: a
// failed authentication, as Kafka closes after its failure response.
var errSaslClose = errors.New("broker: authentication failed")
