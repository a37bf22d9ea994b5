package broker

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslHandshake: v0-1
//
// Behavior:
// * On a SASL listener before authentication (or to begin a
//   re-authentication, KIP-368): an enabled mechanism is chosen and the
//   response lists the enabled ones; any other mechanism gets
//   UNSUPPORTED_SASL_MECHANISM with the list, and the connection closes
//   after the response (SaslServerAuthenticator.handleHandshakeRequest).
// * Anywhere else (non-SASL listener, already authenticated by a client
//   that cannot re-authenticate): ILLEGAL_SASL_STATE, as KafkaApis does.
// * A re-authentication must keep its mechanism: another one fails the
//   following SaslAuthenticate.
//
// Version notes:
// * v0: the tokens that follow are bare size-prefixed frames
// * v1: the tokens come in SaslAuthenticate requests (KIP-152)

func (s *Server) handleSaslHandshake(creq *clientReq) (kmsg.Response, error) {
	req := creq.Body.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	c := creq.conn
	sc := c.sasl
	if sc == nil || sc.state != saslHandshake {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, nil
	}
	enabled := c.security().saslMechanisms
	resp.SupportedMechanisms = slices.Clone(enabled)
	if !slices.Contains(enabled, req.Mechanism) {
		s.logger.Debug("SASL mechanism not enabled", "remote", c.nc.RemoteAddr(), "listener", c.listener.Name, "mechanism", req.Mechanism)
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		c.closeAfterResponse = true
		return resp, nil
	}
	sc.mechanism = req.Mechanism
	sc.server = c.newSaslServer(req.Mechanism)
	sc.state = saslAuthenticate
	sc.rawTokens = req.Version == 0
	return resp, nil
}
