package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kbroker/kbroker/broker"
)

// The security keys come through the file, the environment (as the
// apache/kafka image maps them) and flags like any other, and none is
// reported unknown.
func TestSecuritySettings(t *testing.T) {
	file := filepath.Join(t.TempDir(), "server.properties")
	os.WriteFile(file, []byte(`listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \
    username="admin" password="admin-secret" user_admin="admin-secret";
`), 0o644)
	environ := []string{
		"KAFKA_SASL_ENABLED_MECHANISMS=PLAIN,SCRAM-SHA-512",
		"KAFKA_LISTENER_NAME_SASL__PLAINTEXT_SCRAM___SHA___512_CONNECTIONS_MAX_REAUTH_MS=60000",
	}
	st, err := loadSettings(file, environ, overrides{"kbroker.scram.bootstrap.users": "SCRAM-SHA-512=[name=alice,password=alice-secret]"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.props["listener.name.sasl_plaintext.scram-sha-512.connections.max.reauth.ms"]; !ok {
		t.Fatalf("env key not mapped: %v", st.props)
	}
	if u := broker.UnknownKeys(st.props); len(u) != 0 {
		t.Errorf("unknown keys %v", u)
	}
	cfg, err := broker.ParseConfig(st.props)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScramBootstrapUsers) != 1 || cfg.ScramBootstrapUsers[0].Name != "alice" {
		t.Errorf("bootstrap users %+v", cfg.ScramBootstrapUsers)
	}
}
