package broker

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OAUTHBEARER (RFC 7628, KIP-255) with Kafka's default server callback,
// OAuthBearerUnsecuredValidatorCallbackHandler: the token is an unsecured
// JWS (alg "none", no signature) whose claims are checked, not its origin.
// It is for development and tests, as in Kafka; a token can be forged by
// anyone who can reach the listener.

// oauthValidatorOptions are the unsecuredValidator* options of the
// listener's OAuthBearerLoginModule JAAS config.
type oauthValidatorOptions struct {
	principalClaim string        // unsecuredValidatorPrincipalClaimName, "sub"
	scopeClaim     string        // unsecuredValidatorScopeClaimName, "scope"
	requiredScope  []string      // unsecuredValidatorRequiredScope
	clockSkew      time.Duration // unsecuredValidatorAllowableClockSkewMs
}

const oauthLoginModule = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"

func parseOAuthValidatorOptions(options map[string]string) (oauthValidatorOptions, error) {
	o := oauthValidatorOptions{principalClaim: "sub", scopeClaim: "scope"}
	if v := strings.TrimSpace(options["unsecuredValidatorPrincipalClaimName"]); v != "" {
		o.principalClaim = v
	}
	if v := strings.TrimSpace(options["unsecuredValidatorScopeClaimName"]); v != "" {
		o.scopeClaim = v
	}
	for _, s := range strings.Fields(options["unsecuredValidatorRequiredScope"]) {
		o.requiredScope = append(o.requiredScope, strings.Trim(s, ","))
	}
	if v := strings.TrimSpace(options["unsecuredValidatorAllowableClockSkewMs"]); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return o, fmt.Errorf("unsecuredValidatorAllowableClockSkewMs: invalid value %q", v)
		}
		o.clockSkew = time.Duration(n) * time.Millisecond
	}
	return o, nil
}

// oauthClientFirst is the client's initial response:
// gs2 header, then \x01-separated key=value pairs, ending in \x01\x01.
type oauthClientFirst struct {
	authzid    string
	token      string
	extensions map[string]string
}

// parseOAuthClientFirst parses "n,[a=authzid],\x01auth=Bearer <token>\x01(k=v\x01)*\x01"
// as Kafka's OAuthBearerClientInitialResponse does.
func parseOAuthClientFirst(b []byte) (*oauthClientFirst, error) {
	s := string(b)
	bad := saslFailed("Invalid OAUTHBEARER client first message")
	rest, ok := strings.CutPrefix(s, "n,")
	if !ok {
		return nil, bad
	}
	gs2, rest, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, bad
	}
	cf := &oauthClientFirst{extensions: map[string]string{}}
	if gs2 != "" {
		a, ok := strings.CutPrefix(gs2, "a=")
		if !ok {
			return nil, bad
		}
		if cf.authzid, ok = decodeSaslName(a); !ok {
			return nil, bad
		}
	}
	if !strings.HasPrefix(rest, "\x01") || !strings.HasSuffix(rest, "\x01\x01") || len(rest) < 3 {
		return nil, bad
	}
	pairs := strings.Split(rest[1:len(rest)-2], "\x01")
	auth := ""
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, bad
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return nil, bad
			}
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; (c < 0x21 || c > 0x7e) && c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				return nil, bad
			}
		}
		if k == "auth" {
			auth = v
		} else {
			cf.extensions[k] = v
		}
	}
	scheme, token, ok := strings.Cut(auth, " ")
	token = strings.TrimLeft(token, " ")
	if !ok || token == "" {
		return nil, saslFailed("Invalid OAuth token in the OAUTHBEARER client first message")
	}
	if !strings.EqualFold(scheme, "bearer") {
		return nil, saslFailed("Invalid scheme in OAuth token: %s", scheme)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return nil, saslFailed("Invalid OAuth token in the OAUTHBEARER client first message")
		}
	}
	cf.token = token
	return cf, nil
}

// unsecuredJWT is a validated token: its principal and lifetime.
type unsecuredJWT struct {
	principal string
	expires   time.Time
}

// errInsufficientScope marks a token without a required scope.
var errInsufficientScope = errors.New("insufficient scope")

// validateUnsecuredJWT checks an unsecured JWS as Kafka's
// OAuthBearerUnsecuredJws and OAuthBearerValidationUtils do: three parts,
// no signature, header alg "none", a string principal claim, a numeric
// exp in the future and an iat (if any) not in the future, beyond the
// allowed clock skew, and the required scopes.
func validateUnsecuredJWT(token string, o oauthValidatorOptions, now time.Time) (unsecuredJWT, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return unsecuredJWT{}, errors.New("not a JWS compact serialization of three parts")
	}
	if parts[2] != "" {
		return unsecuredJWT{}, errors.New("signed JWS is not supported: the token must be unsecured")
	}
	decode := func(p string) (map[string]any, error) {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(p, "="))
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		return m, nil
	}
	header, err := decode(parts[0])
	if err != nil {
		return unsecuredJWT{}, fmt.Errorf("header: %v", err)
	}
	if alg, _ := header["alg"].(string); alg != "none" {
		return unsecuredJWT{}, errors.New(`the header's alg must be "none"`)
	}
	claims, err := decode(parts[1])
	if err != nil {
		return unsecuredJWT{}, fmt.Errorf("claims: %v", err)
	}
	principal, _ := claims[o.principalClaim].(string)
	if strings.TrimSpace(principal) == "" {
		return unsecuredJWT{}, fmt.Errorf("no string %q claim", o.principalClaim)
	}
	exp, ok := claims["exp"].(float64)
	if !ok || math.IsNaN(exp) || math.IsInf(exp, 0) || exp > 1e12 || exp < -1e12 {
		return unsecuredJWT{}, errors.New(`no numeric "exp" claim`)
	}
	expires := time.UnixMilli(int64(exp * 1000))
	if now.After(expires.Add(o.clockSkew)) {
		return unsecuredJWT{}, errors.New("the token has expired")
	}
	if v, present := claims["iat"]; present {
		iat, ok := v.(float64)
		if !ok || math.IsNaN(iat) || math.IsInf(iat, 0) || iat > 1e12 || iat < -1e12 {
			return unsecuredJWT{}, errors.New(`the "iat" claim is not a number`)
		}
		issued := time.UnixMilli(int64(iat * 1000))
		if issued.After(now.Add(o.clockSkew)) {
			return unsecuredJWT{}, errors.New("the token is issued in the future")
		}
		if !expires.After(issued) {
			return unsecuredJWT{}, errors.New("the token expires before it is issued")
		}
	}
	var scopes []string
	switch s := claims[o.scopeClaim].(type) {
	case string:
		scopes = strings.Fields(s)
	case []any:
		for _, x := range s {
			if x, ok := x.(string); ok {
				scopes = append(scopes, x)
			}
		}
	}
	for _, r := range o.requiredScope {
		if !slices.Contains(scopes, r) {
			return unsecuredJWT{}, fmt.Errorf("%w: %s", errInsufficientScope, r)
		}
	}
	return unsecuredJWT{principal: principal, expires: expires}, nil
}

// oauthServer is Kafka's OAuthBearerSaslServer with the unsecured
// validator. A rejected token is answered with an RFC 7628 error JSON;
// the client acknowledges with a lone \x01 and the exchange then fails
// with that JSON as the message.
type oauthServer struct {
	opts    oauthValidatorOptions
	now     func() time.Time
	errJSON string
	user    string
	expires time.Time
	done    bool
}

func (o *oauthServer) complete() bool   { return o.done }
func (o *oauthServer) username() string { return o.user }

// credentialExpiry is when the token expires: the session ends then at
// the latest (Kafka's CREDENTIAL_LIFETIME_MS).
func (o *oauthServer) credentialExpiry() time.Time { return o.expires }

func (o *oauthServer) evaluate(token []byte) ([]byte, error) {
	if o.done {
		return nil, errors.New("OAUTHBEARER exchange already complete")
	}
	if o.errJSON != "" {
		if len(token) == 1 && token[0] == 0x01 {
			return nil, saslAuthFailed(o.errJSON)
		}
		return nil, saslFailed("Received %x instead of the \\x01 that acknowledges an OAUTHBEARER error", token)
	}
	cf, err := parseOAuthClientFirst(token)
	if err != nil {
		return nil, err
	}
	jwt, err := validateUnsecuredJWT(cf.token, o.opts, o.now())
	if err != nil {
		status := map[string]string{"status": "invalid_token"}
		if errors.Is(err, errInsufficientScope) {
			status = map[string]string{"status": "insufficient_scope", "scope": strings.Join(o.opts.requiredScope, " ")}
		}
		b, _ := json.Marshal(status)
		o.errJSON = string(b)
		return b, nil
	}
	if cf.authzid != "" && cf.authzid != jwt.principal {
		return nil, saslAuthFailed(fmt.Sprintf("Authentication failed: Client requested an authorization id (%s) that is different from the token's principal name (%s)", cf.authzid, jwt.principal))
	}
	o.user, o.expires, o.done = jwt.principal, jwt.expires, true
	return []byte{}, nil
}
