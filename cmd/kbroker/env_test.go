package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kbroker/kbroker/broker"
)

func TestEnvKey(t *testing.T) {
	for name, want := range map[string]string{
		"KAFKA_ADVERTISED_LISTENERS":                 "advertised.listeners",
		"KAFKA_LOG_DIRS":                             "log.dirs",
		"KAFKA_NODE_ID":                              "node.id",
		"KAFKA_NUM_PARTITIONS":                       "num.partitions",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":     "offsets.topic.replication.factor",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":     "group.initial.rebalance.delay.ms",
		"KAFKA_HTTP_LISTENER":                        "http.listener",
		"KAFKA_KBROKER_METRICS_PER_PARTITION_ENABLE": "kbroker.metrics.per.partition.enable",
		"KAFKA_LISTENER_NAME_INTERNAL_SSL_KEY__PASS": "listener.name.internal.ssl.key_pass", // "__" is "_"
		"KAFKA_SOME___DASHED_KEY":                    "some-dashed.key",                     // "___" is "-"
		"KAFKA_A_B_C":                                "a.b.c",
	} {
		got, ok := envKey(name)
		if !ok || got != want {
			t.Errorf("envKey(%s) = %q, %v; want %q", name, got, ok, want)
		}
	}
	for _, name := range []string{"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_VERSION", "KAFKA_", "KAFKAX_Y", "PATH", "kafka_log_dirs"} {
		if k, ok := envKey(name); ok {
			t.Errorf("envKey(%s) = %q, want no config", name, k)
		}
	}
}

// Flags > env > file > defaults.
func TestSettingsPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "server.properties")
	os.WriteFile(file, []byte("num.partitions=2\nlog.retention.hours=10\nmin.insync.replicas=3\nnode.id=4\n"), 0o644)
	environ := []string{"KAFKA_LOG_RETENTION_HOURS=20", "KAFKA_MIN_INSYNC_REPLICAS=1", "PATH=/bin", "KAFKA_HEAP_OPTS=-Xmx1G", "KAFKA_NODE_ID=5"}
	st, err := loadSettings(file, environ, overrides{"min.insync.replicas": "2", "node.id": "6"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"num.partitions":      "2",  // file only
		"log.retention.hours": "20", // env over file
		"min.insync.replicas": "2",  // flag over env and file
		"node.id":             "6",
	}
	if len(st.props) != len(want) {
		t.Errorf("props %v, want %v", st.props, want)
	}
	for k, v := range want {
		if st.props[k] != v {
			t.Errorf("%s = %q, want %q", k, st.props[k], v)
		}
	}
	if st.source["log.retention.hours"] != "env KAFKA_LOG_RETENTION_HOURS" || st.source["num.partitions"] != "file "+file || st.source["node.id"] != "flag" {
		t.Errorf("sources: %v", st.source)
	}
}

// An invalid value from the environment stops the start with an error
// naming the key; an unknown key only warns.
func TestRunEnvErrors(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"--ephemeral", "--override", "listeners=PLAINTEXT://127.0.0.1:0", "--override", "http.listener="},
		[]string{"KAFKA_NUM_PARTITIONS=zero", "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR=1"}, &stderr, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1; log:\n%s", code, &stderr)
	}
	out := stderr.String()
	if !strings.Contains(out, "num.partitions") || !strings.Contains(out, `invalid value \"zero\"`) {
		t.Errorf("error does not name the key and value:\n%s", out)
	}
	if !strings.Contains(out, "unknown config ignored") || !strings.Contains(out, "share.coordinator.state.topic.replication.factor") || !strings.Contains(out, "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR") {
		t.Errorf("no warning for the unknown key:\n%s", out)
	}
}

func TestRunLogFormatAndVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--log-format", "xml"}, nil, &out, &out); code != 2 {
		t.Errorf("--log-format xml: exit %d, want 2", code)
	}
	out.Reset()
	var stderr bytes.Buffer
	code := run([]string{"--log-format", "json", "--ephemeral", "--override", "num.partitions=0"}, nil, &out, &stderr)
	if code != 1 || !strings.HasPrefix(stderr.String(), "{") || !strings.Contains(stderr.String(), `"level":"ERROR"`) {
		t.Errorf("json log: exit %d, stderr %q", code, &stderr)
	}
	out.Reset()
	if code := run([]string{"version"}, nil, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "kbroker ") {
		t.Errorf("version: exit %d, %q", code, &out)
	}
	version = "v9.9.9"
	defer func() { version = "" }()
	out.Reset()
	run([]string{"version"}, nil, &out, &out)
	if !strings.HasPrefix(out.String(), "kbroker v9.9.9 ") {
		t.Errorf("version with -X main.version: %q", &out)
	}
}

func TestHealthcheckWithoutBroker(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"healthcheck", "--override", "http.listener=127.0.0.1:1", "--timeout", "1s"}, nil, &out, &out); code != 1 {
		t.Errorf("healthcheck with nothing listening: exit %d, want 1 (%s)", code, &out)
	}
	if code := run([]string{"healthcheck", "--override", "http.listener="}, nil, &out, &out); code != 1 {
		t.Errorf("healthcheck with http.listener empty: exit %d, want 1", code)
	}
	if got := dialAddr("0.0.0.0:9644"); got != "127.0.0.1:9644" {
		t.Errorf("dialAddr(0.0.0.0:9644) = %s", got)
	}
	if got := dialAddr(":9644"); got != "127.0.0.1:9644" {
		t.Errorf("dialAddr(:9644) = %s", got)
	}
}

// CLUSTER_ID, as the apache/kafka image reads it, must be a Kafka Uuid.
func TestRunBadClusterID(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"--ephemeral", "--override", "listeners=PLAINTEXT://127.0.0.1:0", "--override", "http.listener="},
		[]string{"CLUSTER_ID=not-a-uuid"}, &stderr, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `cluster id \"not-a-uuid\"`) {
		t.Errorf("exit %d, want 1 with an error naming the cluster id:\n%s", code, &stderr)
	}
}

// The Dockerfile configures the image by ENV, as apache/kafka is
// configured: those variables must make a valid configuration with the
// ports and volume the image declares.
func TestDockerfileEnvironment(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// ENV KEY=VALUE \ continued over lines, as the Dockerfile writes it.
	var environ []string
	inEnv := false
	for _, line := range strings.Split(string(df), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			inEnv, line = true, rest
		} else if !inEnv {
			continue
		}
		inEnv = strings.HasSuffix(line, `\`)
		for _, kv := range strings.Fields(strings.TrimSuffix(line, `\`)) {
			environ = append(environ, kv)
		}
	}
	if len(environ) == 0 {
		t.Fatal("no ENV in the Dockerfile")
	}
	props, _ := envProps(environ)
	cfg, err := broker.ParseConfig(props)
	if err != nil {
		t.Fatalf("the image's environment %q: %v", environ, err)
	}
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Port != 9092 || cfg.Listeners[0].Host != "0.0.0.0" {
		t.Errorf("listeners %v, want 0.0.0.0:9092 (EXPOSE 9092)", cfg.Listeners)
	}
	if cfg.LogDir != "/var/lib/kbroker" || !strings.Contains(string(df), "VOLUME /var/lib/kbroker") {
		t.Errorf("log dir %s is not the image's volume", cfg.LogDir)
	}
	if cfg.HTTPListener != "0.0.0.0:9644" || dialAddr(cfg.HTTPListener) != "127.0.0.1:9644" {
		t.Errorf("http.listener %s: the healthcheck would not reach it", cfg.HTTPListener)
	}
}
