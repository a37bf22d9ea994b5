package broker

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// kafkaComposeEnv is the single-node KRaft setup of Apache Kafka's docker
// examples (docker/examples, "single node, plaintext"), as the KAFKA_*
// variables map to configs: a listener for other containers, one for the
// host, and a controller listener.
var kafkaComposeEnv = map[string]string{
	"node.id":                                  "1",
	"listener.security.protocol.map":           "CONTROLLER:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT,PLAINTEXT:PLAINTEXT",
	"advertised.listeners":                     "PLAINTEXT_HOST://localhost:9092,PLAINTEXT://broker:19092",
	"process.roles":                            "broker,controller",
	"controller.quorum.voters":                 "1@broker:29093",
	"listeners":                                "CONTROLLER://:29093,PLAINTEXT_HOST://:9092,PLAINTEXT://:19092",
	"inter.broker.listener.name":               "PLAINTEXT",
	"controller.listener.names":                "CONTROLLER",
	"offsets.topic.replication.factor":         "1",
	"group.initial.rebalance.delay.ms":         "0",
	"transaction.state.log.min.isr":            "1",
	"transaction.state.log.replication.factor": "1",
	"log.dirs":                                 "/tmp/kraft-combined-logs",
}

func listenerStrings(ls []Listener) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.SecurityProtocol+" "+l.String())
	}
	return out
}

func TestParseConfigListeners(t *testing.T) {
	for _, tc := range []struct {
		name                           string
		props                          map[string]string
		listeners, advertised, control []string
	}{
		{
			name:       "default",
			listeners:  []string{"PLAINTEXT PLAINTEXT://localhost:9092"},
			advertised: []string{"PLAINTEXT PLAINTEXT://localhost:9092"},
		},
		{
			name:       "apache/kafka compose",
			props:      kafkaComposeEnv,
			listeners:  []string{"PLAINTEXT PLAINTEXT_HOST://:9092", "PLAINTEXT PLAINTEXT://:19092"},
			advertised: []string{"PLAINTEXT PLAINTEXT_HOST://localhost:9092", "PLAINTEXT PLAINTEXT://broker:19092"},
			control:    []string{"PLAINTEXT CONTROLLER://:29093"},
		},
		{
			// With the default protocol map a controller listener is
			// PLAINTEXT, and advertised.listeners defaults to the broker
			// listeners.
			name: "default map, controller listener, names in lower case",
			props: map[string]string{
				"listeners":                 "plaintext://127.0.0.1:9092,controller://127.0.0.1:9093",
				"controller.listener.names": "controller",
			},
			listeners:  []string{"PLAINTEXT PLAINTEXT://127.0.0.1:9092"},
			advertised: []string{"PLAINTEXT PLAINTEXT://127.0.0.1:9092"},
			control:    []string{"PLAINTEXT CONTROLLER://127.0.0.1:9093"},
		},
		{
			// A listener missing from advertised.listeners is kept; it
			// advertises itself (see advertisedFor).
			name: "internal and external",
			props: map[string]string{
				"listeners":                      "INTERNAL://0.0.0.0:29092,EXTERNAL://0.0.0.0:9092,DEBUG://127.0.0.1:9094",
				"advertised.listeners":           "INTERNAL://kafka:29092,EXTERNAL://localhost:9092",
				"listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,DEBUG:PLAINTEXT",
				"broker.id":                      "7",
			},
			listeners:  []string{"PLAINTEXT INTERNAL://0.0.0.0:29092", "PLAINTEXT EXTERNAL://0.0.0.0:9092", "PLAINTEXT DEBUG://127.0.0.1:9094"},
			advertised: []string{"PLAINTEXT INTERNAL://kafka:29092", "PLAINTEXT EXTERNAL://localhost:9092"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(tc.props)
			if err != nil {
				t.Fatal(err)
			}
			if got := listenerStrings(c.Listeners); !slices.Equal(got, tc.listeners) {
				t.Errorf("listeners %q, want %q", got, tc.listeners)
			}
			if got := listenerStrings(c.AdvertisedListeners); !slices.Equal(got, tc.advertised) {
				t.Errorf("advertised %q, want %q", got, tc.advertised)
			}
			if got := listenerStrings(c.ControllerListeners); !slices.Equal(got, tc.control) {
				t.Errorf("controller listeners %q, want %q", got, tc.control)
			}
		})
	}
	c, err := ParseConfig(map[string]string{"broker.id": "7"})
	if err != nil || c.NodeID != 7 {
		t.Errorf("broker.id alone: node id %d, %v; want 7", c.NodeID, err)
	}
	if c, err := ParseConfig(kafkaComposeEnv); err != nil || c.NodeID != 1 || !slices.Equal(c.ProcessRoles, []string{"broker", "controller"}) {
		t.Errorf("compose: node id %d, roles %q, %v", c.NodeID, c.ProcessRoles, err)
	}
}

// Each invalid listener setup is a start-up error naming the key at fault.
func TestParseConfigListenerErrors(t *testing.T) {
	for _, tc := range []struct {
		props   map[string]string
		key     string // the error names it
		message string // and says this
	}{
		{map[string]string{"listeners": "SSL://:9093"}, "config ssl.keystore.location", "needs a key and certificate chain"},
		{map[string]string{"listeners": "SSL://:9093", "ssl.keystore.type": "JKS"}, "config ssl.keystore.type", "kbroker reads PEM"},
		{map[string]string{"listeners": "SASL_PLAINTEXT://:9093"}, "config sasl.enabled.mechanisms", "GSSAPI"},
		{map[string]string{"listeners": "SASL_PLAINTEXT://:9093", "sasl.enabled.mechanisms": "PLAIN"}, "config listener.name.sasl_plaintext.plain.sasl.jaas.config", "PlainLoginModule"},
		{map[string]string{"listeners": "SASL_PLAINTEXT://:9093", "sasl.enabled.mechanisms": "GSSAPI"}, "config sasl.enabled.mechanisms", "not supported"},
		{map[string]string{"listeners": "EXTERNAL://:9093"}, "config listeners", "no security protocol for listener EXTERNAL"},
		{map[string]string{"listeners": "PLAINTEXT://:9092,CONTROLLER://:9093", "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT", "controller.listener.names": "CONTROLLER"},
			"config listeners", "no security protocol for listener CONTROLLER"},
		{map[string]string{"listener.security.protocol.map": "PLAINTEXT:TLS"}, "config listener.security.protocol.map", "unknown security protocol TLS"},
		{map[string]string{"listeners": "PLAINTEXT://:9092,OTHER://:9092", "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT"}, "config listeners", "port 9092 is used by another listener"},
		{map[string]string{"listeners": "PLAINTEXT://:9092,plaintext://:9093"}, "config listeners", "appears twice"},
		{map[string]string{"listeners": "PLAINTEXT://0.0.0.0:9092"}, "config listeners", "non-routable address 0.0.0.0"},
		{map[string]string{"listeners": "PLAINTEXT://0.0.0.0:9092", "advertised.listeners": "PLAINTEXT://0.0.0.0:9092"}, "config advertised.listeners", "non-routable"},
		{map[string]string{"advertised.listeners": "OTHER://h:1", "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT"}, "config advertised.listeners", "OTHER is not a broker listener"},
		{map[string]string{"listeners": "CONTROLLER://:9093", "controller.listener.names": "CONTROLLER"}, "config listeners", "no broker listener"},
		{map[string]string{"inter.broker.listener.name": "INTERNAL"}, "config inter.broker.listener.name", "INTERNAL is not an advertised broker listener"},
		{map[string]string{"inter.broker.listener.name": "PLAINTEXT", "security.inter.broker.protocol": "PLAINTEXT"}, "config inter.broker.listener.name", "not both"},
		{map[string]string{"process.roles": "controller"}, "config process.roles", "lacks the broker role"},
		{map[string]string{"process.roles": "broker,zookeeper"}, "config process.roles", `unknown role "zookeeper"`},
		{map[string]string{"broker.id": "2", "node.id": "1"}, "config broker.id", "differs from node.id"},
		{map[string]string{"controller.quorum.voters": "broker:9093"}, "config controller.quorum.voters", "not id@host:port"},
	} {
		_, err := ParseConfig(tc.props)
		if err == nil || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%v: error %v, want one naming %q and saying %q", tc.props, err, tc.key, tc.message)
		}
	}
}

// A cluster's quorum settings are checked as Kafka's combined nodes need
// them: this node among the voters, the controller role, one controller
// listener on its voter's port; a dynamic quorum is refused, not run as a
// single node.
func TestClusterQuorumConfig(t *testing.T) {
	base := map[string]string{
		"node.id":                   "1",
		"listeners":                 "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
		"controller.listener.names": "CONTROLLER",
		"controller.quorum.voters":  "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293",
	}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	cfg, err := ParseConfig(base)
	if err != nil || !cfg.Clustered() || len(cfg.QuorumVoters) != 3 {
		t.Fatalf("a 3-voter config: clustered %v, %d voters, err %v", cfg.Clustered(), len(cfg.QuorumVoters), err)
	}
	for name, props := range map[string]map[string]string{
		"not a voter":              with("node.id", "4"),
		"no controller role":       with("process.roles", "broker"),
		"no controller listener":   with("listeners", "PLAINTEXT://127.0.0.1:9092", "controller.listener.names", ""),
		"listener on another port": with("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9999"),
		"dynamic quorum":           with("controller.quorum.voters", "", "controller.quorum.bootstrap.servers", "127.0.0.1:9093,127.0.0.1:9193"),
	} {
		if _, err := ParseConfig(props); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	single, err := ParseConfig(with("controller.quorum.voters", "", "controller.quorum.bootstrap.servers", "127.0.0.1:9093"))
	if err != nil || single.Clustered() {
		t.Errorf("one bootstrap server: clustered %v, err %v; want a single node", single.Clustered(), err)
	}
}

// authorizer.class.name accepts Kafka 4's StandardAuthorizer only;
// super.users splits on ';'.
func TestAuthorizerConfig(t *testing.T) {
	c, err := ParseConfig(map[string]string{"authorizer.class.name": standardAuthorizer, "super.users": "User:admin; User:ops",
		"allow.everyone.if.no.acl.found": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if c.AuthorizerClassName != standardAuthorizer || len(c.SuperUsers) != 2 || c.SuperUsers[1] != "User:ops" || !c.AllowEveryoneIfNoACLFound {
		t.Fatalf("parsed %q %q %v", c.AuthorizerClassName, c.SuperUsers, c.AllowEveryoneIfNoACLFound)
	}
	if c := DefaultConfig(); c.AuthorizerClassName != "" || newAuthorizer(c) != nil {
		t.Fatal("authorization on by default")
	}
	for _, bad := range []map[string]string{
		{"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer"},
		{"authorizer.class.name": "com.example.Authorizer"},
		{"super.users": "admin"},
	} {
		if _, err := ParseConfig(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// The transaction state journal is fsynced as the logs are: never by
// default, per message count or interval when the broker's log flush
// settings ask.
func TestJournalOptionsFollowLogFlush(t *testing.T) {
	for _, c := range []struct {
		props    map[string]string
		every    int64
		interval time.Duration
	}{
		{nil, 0, 0},
		{map[string]string{"log.flush.interval.messages": "1"}, 1, 0},
		{map[string]string{"log.flush.interval.messages": "100", "log.flush.interval.ms": "500"}, 100, 500 * time.Millisecond},
		{map[string]string{"log.flush.interval.ms": "0"}, 1, 0},
	} {
		cfg, err := ParseConfig(c.props)
		if err != nil {
			t.Fatal(err)
		}
		o := journalOptions(cfg.LogDefaults)
		if o.SyncEvery != c.every || o.SyncInterval != c.interval {
			t.Errorf("%v: %+v, want SyncEvery %d, SyncInterval %v", c.props, o, c.every, c.interval)
		}
	}
}
