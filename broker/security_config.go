package broker

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Security settings, by Kafka's names. Each may be set for one listener
// with the prefix listener.name.<name in lower case>. (Kafka's
// valuesWithPrefixOverride: the prefixed key wins, key by key); the SASL
// ones also per mechanism, listener.name.<l>.<mechanism in lower case>.<key>.
var securityConfigKeys = []string{
	"ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password",
	"ssl.keystore.certificate.chain", "ssl.keystore.key", "ssl.key.password",
	"ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.password",
	"ssl.truststore.certificates", "ssl.client.auth", "ssl.principal.mapping.rules",
	"ssl.enabled.protocols", "ssl.protocol", "ssl.endpoint.identification.algorithm",
	"sasl.enabled.mechanisms", "sasl.jaas.config", "sasl.mechanism.inter.broker.protocol",
	"connections.max.reauth.ms",
	// kbroker's own: SCRAM users created at start when missing (Kafka does
	// it with kafka-storage format --add-scram).
	"kbroker.scram.bootstrap.users",
}

func isSecurityKey(k string) bool {
	return slices.Contains(securityConfigKeys, k) || strings.HasPrefix(k, "listener.name.")
}

// listenerSecurity is what a listener needs to secure its connections,
// resolved from the security settings at config time.
type listenerSecurity struct {
	// tls is set on SSL and SASL_SSL listeners.
	tls *tls.Config
	// principalRules map a client certificate's distinguished name to a
	// principal name (ssl.principal.mapping.rules).
	principalRules []sslPrincipalRule
	// saslMechanisms is sasl.enabled.mechanisms on SASL listeners.
	saslMechanisms []string
	// plainUsers is username → password from the PLAIN JAAS config.
	plainUsers map[string]string
	// maxReauth is connections.max.reauth.ms per mechanism (0: none).
	maxReauth map[string]time.Duration
	// oauth are the unsecured OAUTHBEARER validator's options.
	oauth oauthValidatorOptions
}

// securityProp returns key for listener (Kafka's listener prefix, then
// the global key).
func (c *Config) securityProp(listener, key string) (string, bool) {
	if v, ok := c.security["listener.name."+strings.ToLower(listener)+"."+key]; ok {
		return strings.TrimSpace(v), true
	}
	v, ok := c.security[key]
	return strings.TrimSpace(v), ok
}

// saslProp is securityProp with the per-mechanism form first.
func (c *Config) saslProp(listener, mechanism, key string) (string, bool) {
	if v, ok := c.security["listener.name."+strings.ToLower(listener)+"."+strings.ToLower(mechanism)+"."+key]; ok {
		return strings.TrimSpace(v), true
	}
	return c.securityProp(listener, key)
}

// saslMechanisms are the mechanisms kbroker's SASL listeners can serve.
var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"}

// resolveSecurity builds each broker listener's TLS and SASL settings and
// checks that inter-broker traffic stays PLAINTEXT in a cluster.
func (c *Config) resolveSecurity(props map[string]string) error {
	c.security = map[string]string{}
	for k, v := range props {
		if isSecurityKey(k) {
			c.security[k] = v
		}
	}
	c.listenerSecurity = map[string]*listenerSecurity{}
	for _, l := range c.Listeners {
		ls := &listenerSecurity{}
		if l.SecurityProtocol == "SSL" || l.SecurityProtocol == "SASL_SSL" {
			var err error
			if ls.tls, err = c.buildTLSConfig(l.Name); err != nil {
				return fmt.Errorf("listener %s: %w", l.Name, err)
			}
			rules, _ := c.securityProp(l.Name, "ssl.principal.mapping.rules")
			if ls.principalRules, err = parsePrincipalMappingRules(rules); err != nil {
				return fmt.Errorf("config ssl.principal.mapping.rules: listener %s: %w", l.Name, err)
			}
		}
		if l.SecurityProtocol == "SASL_PLAINTEXT" || l.SecurityProtocol == "SASL_SSL" {
			if err := c.resolveSASL(l.Name, ls); err != nil {
				return err
			}
		}
		c.listenerSecurity[l.Name] = ls
	}
	if v, ok := c.security["kbroker.scram.bootstrap.users"]; ok {
		users, err := parseScramBootstrapUsers(v)
		if err != nil {
			return fmt.Errorf("config kbroker.scram.bootstrap.users: %w", err)
		}
		c.ScramBootstrapUsers = users
	}
	if c.Clustered() {
		// Replication and the controller quorum speak PLAINTEXT only.
		if p := props["security.inter.broker.protocol"]; p != "" && p != "PLAINTEXT" {
			return fmt.Errorf("config security.inter.broker.protocol: %s is not supported in a cluster yet: inter-broker traffic is PLAINTEXT", p)
		}
		if n := c.InterBrokerListener(); !slices.ContainsFunc(c.AdvertisedListeners, func(l Listener) bool {
			return l.Name == n && l.SecurityProtocol == "PLAINTEXT"
		}) {
			return fmt.Errorf("config inter.broker.listener.name: listener %s is not PLAINTEXT: inter-broker traffic over TLS or SASL is not supported yet", n)
		}
	}
	return nil
}

// resolveSASL reads sasl.enabled.mechanisms (Kafka's default: GSSAPI,
// which kbroker does not serve, so the key is required), the PLAIN users
// from the PLAIN JAAS config and connections.max.reauth.ms.
func (c *Config) resolveSASL(listener string, ls *listenerSecurity) error {
	v, ok := c.securityProp(listener, "sasl.enabled.mechanisms")
	if !ok || v == "" {
		return fmt.Errorf("config sasl.enabled.mechanisms: listener %s is a SASL listener: enable one or more of %s (GSSAPI, Kafka's default, is not supported)",
			listener, strings.Join(saslMechanisms, ", "))
	}
	ls.maxReauth = map[string]time.Duration{}
	for _, m := range strings.Split(v, ",") {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" {
			continue
		}
		if !slices.Contains(saslMechanisms, m) {
			return fmt.Errorf("config sasl.enabled.mechanisms: listener %s: mechanism %s is not supported (want %s)", listener, m, strings.Join(saslMechanisms, ", "))
		}
		if !slices.Contains(ls.saslMechanisms, m) {
			ls.saslMechanisms = append(ls.saslMechanisms, m)
		}
		if r, ok := c.saslProp(listener, m, "connections.max.reauth.ms"); ok && r != "" {
			n, err := strconv.ParseInt(r, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("config connections.max.reauth.ms: invalid value %q (want milliseconds >= 0)", r)
			}
			ls.maxReauth[m] = time.Duration(n) * time.Millisecond
		}
	}
	if slices.Contains(ls.saslMechanisms, "OAUTHBEARER") {
		// Kafka's default validator, the unsecured one, with the options
		// of the listener's OAuthBearerLoginModule, if any.
		key := "listener.name." + strings.ToLower(listener) + ".oauthbearer.sasl.jaas.config"
		options := map[string]string{}
		if jaas, ok := c.security[key]; ok {
			entries, err := parseJaasConfig(jaas)
			if err != nil {
				return fmt.Errorf("config %s: %w", key, err)
			}
			if len(entries) != 1 || entries[0].loginModule != oauthLoginModule {
				return fmt.Errorf("config %s: want exactly one %s", key, oauthLoginModule)
			}
			options = entries[0].options
		}
		var err error
		if ls.oauth, err = parseOAuthValidatorOptions(options); err != nil {
			return fmt.Errorf("config %s: %w", key, err)
		}
	}
	if slices.Contains(ls.saslMechanisms, "PLAIN") {
		key := "listener.name." + strings.ToLower(listener) + ".plain.sasl.jaas.config"
		jaas, ok := c.security[key]
		if !ok {
			return fmt.Errorf("config %s: PLAIN is enabled on listener %s: give its users in a PlainLoginModule JAAS config", key, listener)
		}
		entries, err := parseJaasConfig(jaas)
		if err != nil {
			return fmt.Errorf("config %s: %w", key, err)
		}
		if len(entries) != 1 || entries[0].loginModule != plainLoginModule {
			return fmt.Errorf("config %s: want exactly one %s", key, plainLoginModule)
		}
		ls.plainUsers = map[string]string{}
		for k, v := range entries[0].options {
			if u, ok := strings.CutPrefix(k, "user_"); ok {
				ls.plainUsers[u] = v
			}
		}
	}
	return nil
}

const plainLoginModule = "org.apache.kafka.common.security.plain.PlainLoginModule"

// buildTLSConfig is Kafka's DefaultSslEngineFactory for PEM stores, with
// crypto/tls.
func (c *Config) buildTLSConfig(listener string) (*tls.Config, error) {
	get := func(k string) string { v, _ := c.securityProp(listener, k); return v }
	for _, k := range []string{"ssl.keystore.type", "ssl.truststore.type"} {
		if t := get(k); t != "" && !strings.EqualFold(t, "PEM") {
			return nil, fmt.Errorf("config %s: %s stores are not supported: kbroker reads PEM (%s=PEM)", k, t, k)
		}
	}
	keyPass := get("ssl.key.password")
	var certPEM, keyPEM []byte
	if loc := get("ssl.keystore.location"); loc != "" {
		b, err := os.ReadFile(loc)
		if err != nil {
			return nil, fmt.Errorf("config ssl.keystore.location: %w", err)
		}
		certPEM, keyPEM = b, b
	} else {
		certPEM, keyPEM = []byte(get("ssl.keystore.certificate.chain")), []byte(get("ssl.keystore.key"))
		if len(certPEM) == 0 || len(keyPEM) == 0 {
			return nil, errors.New("config ssl.keystore.location: a TLS listener needs a key and certificate chain: ssl.keystore.location (a PEM file) or ssl.keystore.certificate.chain and ssl.keystore.key")
		}
	}
	cert, err := loadPEMKeyPair(certPEM, keyPEM, keyPass)
	if err != nil {
		return nil, fmt.Errorf("config ssl.keystore: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	var caPEM []byte
	if loc := get("ssl.truststore.location"); loc != "" {
		if caPEM, err = os.ReadFile(loc); err != nil {
			return nil, fmt.Errorf("config ssl.truststore.location: %w", err)
		}
	} else {
		caPEM = []byte(get("ssl.truststore.certificates"))
	}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("config ssl.truststore: no PEM certificate found")
		}
		tc.ClientCAs = pool
	}
	switch auth := strings.ToLower(get("ssl.client.auth")); auth {
	case "", "none":
		tc.ClientAuth = tls.NoClientCert
	case "requested":
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	case "required":
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("config ssl.client.auth: invalid value %q (want none, requested, required)", auth)
	}
	if tc.ClientAuth != tls.NoClientCert && tc.ClientCAs == nil {
		return nil, errors.New("config ssl.truststore.location: ssl.client.auth needs a truststore to verify client certificates with")
	}
	if p := get("ssl.enabled.protocols"); p != "" {
		versions := map[string]uint16{"TLSv1.2": tls.VersionTLS12, "TLSv1.3": tls.VersionTLS13}
		tc.MinVersion, tc.MaxVersion = 0, 0
		for _, v := range strings.Split(p, ",") {
			n, ok := versions[strings.TrimSpace(v)]
			if !ok {
				return nil, fmt.Errorf("config ssl.enabled.protocols: %q is not supported (want TLSv1.2, TLSv1.3)", v)
			}
			if tc.MinVersion == 0 || n < tc.MinVersion {
				tc.MinVersion = n
			}
			tc.MaxVersion = max(tc.MaxVersion, n)
		}
	}
	return tc, nil
}

// loadPEMKeyPair reads a certificate chain and a private key, PKCS#8 as
// Kafka wants (PKCS#1 and SEC 1 keys are accepted too). An encrypted key
// (ENCRYPTED PRIVATE KEY, ssl.key.password) is refused: Go's standard
// library does not decrypt PKCS#8.
func loadPEMKeyPair(certPEM, keyPEM []byte, keyPass string) (tls.Certificate, error) {
	var certs, keys []byte
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			certs = append(certs, pem.EncodeToMemory(b)...)
		}
	}
	for rest := keyPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch b.Type {
		case "ENCRYPTED PRIVATE KEY":
			return tls.Certificate{}, errors.New("the private key is encrypted (ssl.key.password): encrypted PKCS#8 keys are not supported yet, give an unencrypted PKCS#8 key")
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if keys != nil {
				return tls.Certificate{}, errors.New("more than one private key")
			}
			keys = pem.EncodeToMemory(b)
		}
	}
	if certs == nil {
		return tls.Certificate{}, errors.New("no CERTIFICATE in the PEM keystore")
	}
	if keys == nil {
		return tls.Certificate{}, errors.New("no PRIVATE KEY in the PEM keystore")
	}
	_ = keyPass // only used with encrypted keys
	return tls.X509KeyPair(certs, keys)
}

// sslPrincipalRule is one rule of ssl.principal.mapping.rules (Kafka's
// SslPrincipalMapper): DEFAULT keeps the distinguished name; RULE:
// pattern/replacement/[LU] rewrites a DN the pattern matches whole.
type sslPrincipalRule struct {
	isDefault   bool
	pattern     *regexp.Regexp
	replacement string
	toLower     bool
	toUpper     bool
}

var principalRulePattern = regexp.MustCompile(`^\s*(DEFAULT|RULE:((\\.|[^\\/])*)/((\\.|[^\\/])*)/([LU]?))\s*(,|$)`)

func parsePrincipalMappingRules(v string) ([]sslPrincipalRule, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return []sslPrincipalRule{{isDefault: true}}, nil
	}
	var rules []sslPrincipalRule
	for v != "" {
		m := principalRulePattern.FindStringSubmatch(v)
		if m == nil {
			return nil, fmt.Errorf("invalid rule at %q", v)
		}
		v = strings.TrimSpace(v[len(m[0]):])
		if m[1] == "DEFAULT" {
			rules = append(rules, sslPrincipalRule{isDefault: true})
			continue
		}
		re, err := regexp.Compile(m[2])
		if err != nil {
			return nil, fmt.Errorf("rule pattern %q: %v", m[2], err)
		}
		rules = append(rules, sslPrincipalRule{pattern: re, replacement: m[4], toLower: m[6] == "L", toUpper: m[6] == "U"})
	}
	return rules, nil
}

// mapPrincipal applies the rules to a distinguished name: the first that
// matches wins; none matching is an error, as in Kafka.
func mapPrincipal(rules []sslPrincipalRule, dn string) (string, error) {
	for _, r := range rules {
		if r.isDefault {
			return dn, nil
		}
		if loc := r.pattern.FindStringIndex(dn); loc == nil || loc[0] != 0 || loc[1] != len(dn) {
			continue
		}
		out := r.pattern.ReplaceAllString(dn, r.replacement)
		if r.toLower {
			out = strings.ToLower(out)
		} else if r.toUpper {
			out = strings.ToUpper(out)
		}
		return out, nil
	}
	return "", fmt.Errorf("no rule of ssl.principal.mapping.rules applies to %q", dn)
}
