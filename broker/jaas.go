package broker

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// jaasEntry is one login module of a JAAS configuration (Kafka's
// JaasConfig): "LoginModuleClass flag key=value ... ;".
type jaasEntry struct {
	loginModule string
	flag        string // required, requisite, sufficient, optional
	options     map[string]string
}

// parseJaasConfig parses a sasl.jaas.config value as Kafka's JaasConfig
// does with a StreamTokenizer: words, '=' and ';', values quoted with '"'
// (backslash escapes inside quotes) or bare words; '//' and '/* */'
// comments are skipped.
func parseJaasConfig(s string) ([]jaasEntry, error) {
	toks, err := jaasTokens(s)
	if err != nil {
		return nil, err
	}
	var out []jaasEntry
	for i := 0; i < len(toks); {
		next := func() (jaasToken, bool) {
			if i >= len(toks) {
				return jaasToken{}, false
			}
			i++
			return toks[i-1], true
		}
		mod, ok := next()
		if !ok || mod.kind != 'w' {
			return nil, errors.New("JAAS config: expected a login module class")
		}
		flag, ok := next()
		if !ok || flag.kind != 'w' {
			return nil, fmt.Errorf("JAAS config: login module %s has no control flag", mod.text)
		}
		switch f := strings.ToLower(flag.text); f {
		case "required", "requisite", "sufficient", "optional":
		default:
			return nil, fmt.Errorf("JAAS config: invalid control flag %q (want required, requisite, sufficient, optional)", flag.text)
		}
		e := jaasEntry{loginModule: mod.text, flag: strings.ToLower(flag.text), options: map[string]string{}}
		for {
			t, ok := next()
			if !ok {
				return nil, fmt.Errorf("JAAS config: login module %s is not terminated by ';'", mod.text)
			}
			if t.kind == ';' {
				break
			}
			if t.kind != 'w' {
				return nil, fmt.Errorf("JAAS config: unexpected %q in the options of %s", t.text, mod.text)
			}
			eq, ok := next()
			if !ok || eq.kind != '=' {
				return nil, fmt.Errorf("JAAS config: option %s of %s has no value", t.text, mod.text)
			}
			v, ok := next()
			if !ok || (v.kind != 'w' && v.kind != '"') {
				return nil, fmt.Errorf("JAAS config: option %s of %s has no value", t.text, mod.text)
			}
			e.options[t.text] = v.text
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, errors.New("JAAS config: no login module")
	}
	return out, nil
}

type jaasToken struct {
	kind byte // 'w' word, '"' quoted string, '=' or ';'
	text string
}

func jaasTokens(s string) ([]jaasToken, error) {
	var out []jaasToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.HasPrefix(s[i:], "//"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, errors.New("JAAS config: unterminated comment")
			}
			i += end + 4
		case c == '=' || c == ';':
			out = append(out, jaasToken{kind: c, text: string(c)})
			i++
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, errors.New("JAAS config: unterminated quoted value")
			}
			out = append(out, jaasToken{kind: '"', text: b.String()})
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n=;\"'", rune(s[j])) {
				j++
			}
			out = append(out, jaasToken{kind: 'w', text: s[i:j]})
			i = j
		}
	}
	return out, nil
}

// plainServer is Kafka's PlainSaslServer with the users of the JAAS config
// (PlainServerCallbackHandler): one token, "authzid NUL user NUL password".
type plainServer struct {
	users map[string]string
	user  string
	done  bool
}

func (p *plainServer) complete() bool   { return p.done }
func (p *plainServer) username() string { return p.user }

func (p *plainServer) evaluate(token []byte) ([]byte, error) {
	if p.done {
		return nil, errors.New("PLAIN exchange already complete")
	}
	parts := bytes.Split(token, []byte{0})
	if len(parts) != 3 {
		return nil, saslFailed("Invalid SASL/PLAIN response: expected 3 tokens, got %d", len(parts))
	}
	authzid, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if user == "" {
		return nil, saslAuthFailed("Authentication failed: username not specified")
	}
	if pass == "" {
		return nil, saslAuthFailed("Authentication failed: password not specified")
	}
	want, ok := p.users[user]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(pass)) != 1 {
		return nil, saslAuthFailed("Authentication failed: Invalid username or password")
	}
	if authzid != "" && authzid != user {
		return nil, saslAuthFailed("Authentication failed: Client requested an authorization id that is different from username")
	}
	p.user, p.done = user, true
	return nil, nil
}
