package broker

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslAuthenticate: v0-2
//
// Behavior:
// * Feeds the token to the mechanism chosen by SaslHandshake v1 and
//   returns its answer; on completion the connection's principal is
//   User:<name>.
// * A failure is SASL_AUTHENTICATION_FAILED with the message Kafka gives:
//   the mechanism's own for credential failures (PLAIN's "Authentication
//   failed: Invalid username or password", SCRAM's "Authentication failed:
//   Invalid user credentials", OAUTHBEARER's error JSON), else the generic "Authentication failed
//   during authentication due to invalid credentials with SASL mechanism
//   X" that tells nothing about the user. The connection closes after the
//   response.
// * Out of turn (no handshake, or not a SASL listener): ILLEGAL_SASL_STATE.
// * A re-authentication must keep the principal and the mechanism.
//
// Version notes:
// * v1: SessionLifetimeMs (KIP-368): connections.max.reauth.ms for the
//   mechanism, capped by an OAUTHBEARER token's expiry, 0 when neither;
//   such a session that is not re-authenticated closes on its next
//   request after it expires
// * v2: flexible

func (s *Server) handleSaslAuthenticate(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	c := creq.conn
	sc := c.sasl
	if sc == nil || sc.state != saslAuthenticate || sc.rawTokens {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.ErrorMessage = kmsg.StringPtr("SaslAuthenticate request received after successful authentication")
		return resp, nil
	}
	if req.Version > 0 {
		sc.supportsReauth = true
	}
	what := "authentication"
	if sc.reauth {
		what = "re-authentication"
	}
	fail := func(err error) (kmsg.Response, error) {
		msg := "Authentication failed during " + what + " due to invalid credentials with SASL mechanism " + sc.mechanism
		var se *saslError
		if errors.As(err, &se) && se.clientVisible {
			msg = se.msg
		}
		s.logger.Info("SASL authentication failed", "remote", c.nc.RemoteAddr(), "listener", c.listener.Name,
			"mechanism", sc.mechanism, "err", err)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = kmsg.StringPtr(msg)
		c.closeAfterResponse = true
		// Only this connection waits: its goroutine serves nothing else.
		time.Sleep(s.cfg.FailedAuthenticationDelay)
		return resp, nil
	}
	if sc.reauth && sc.mechanism != sc.reauthMechanism {
		return fail(saslAuthFailed("SASL mechanism '" + sc.mechanism + "' requested by client is not supported for re-authentication of mechanism '" + sc.reauthMechanism + "'"))
	}
	token, err := sc.server.evaluate(req.SASLAuthBytes)
	if err != nil {
		return fail(err)
	}
	if token == nil {
		token = []byte{}
	}
	resp.SASLAuthBytes = token
	if sc.server.complete() {
		if err := c.finishSasl(time.Now()); err != nil {
			return fail(err)
		}
		resp.SessionLifetimeMillis = c.sessionLifetime()
		s.logger.Debug("SASL authenticated", "remote", c.nc.RemoteAddr(), "listener", c.listener.Name,
			"mechanism", sc.mechanism, "principal", c.principal.String())
	}
	return resp, nil
}
