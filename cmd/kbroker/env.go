package main

import (
	"strings"
)

// envPrefix marks the environment variables that set broker configs, as
// in the apache/kafka image (docker/resources/ub/ub.go ConvertKey).
const envPrefix = "KAFKA_"

// envExcluded are KAFKA_* variables of Kafka's launch scripts and image
// that are not broker configs (kafka-propertiesSpec.json's excludes and
// kafka-run-class.sh's variables).
var envExcluded = map[string]bool{
	"KAFKA_VERSION":               true,
	"KAFKA_HEAP_OPTS":             true,
	"KAFKA_LOG4J_OPTS":            true,
	"KAFKA_OPTS":                  true,
	"KAFKA_JMX_OPTS":              true,
	"KAFKA_JVM_PERFORMANCE_OPTS":  true,
	"KAFKA_GC_LOG_OPTS":           true,
	"KAFKA_LOG4J_ROOT_LOGLEVEL":   true,
	"KAFKA_LOG4J_LOGGERS":         true,
	"KAFKA_TOOLS_LOG4J_LOGLEVEL":  true,
	"KAFKA_JMX_HOSTNAME":          true,
	"KAFKA_JMX_PORT":              true,
	"KAFKA_DEBUG":                 true,
	"KAFKA_HOME":                  true,
	"KAFKA_LOG4J_CONFIG":          true,
	"KAFKA_CLUSTER_ID":            true, // the image's storage-format step, not a broker config
	"KAFKA_ENABLE_KRAFT":          true,
	"KAFKA_CFG_OVERRIDE_FROM_ENV": true,
}

// envKey converts a KAFKA_* variable name to a config name the way the
// apache/kafka image does: drop the prefix, then "___" is "-", "__" is "_",
// a single "_" is ".", all lower case. KAFKA_ADVERTISED_LISTENERS is
// advertised.listeners; KAFKA_LOG_DIRS is log.dirs. ok is false for
// variables that are not configs.
func envKey(name string) (key string, ok bool) {
	if !strings.HasPrefix(name, envPrefix) || envExcluded[name] || len(name) == len(envPrefix) {
		return "", false
	}
	rest := name[len(envPrefix):]
	var b strings.Builder
	for i := 0; i < len(rest); {
		if rest[i] != '_' {
			b.WriteByte(rest[i])
			i++
			continue
		}
		n := 0
		for i+n < len(rest) && rest[i+n] == '_' {
			n++
		}
		switch n {
		case 1:
			b.WriteByte('.')
		case 2:
			b.WriteByte('_')
		case 3:
			b.WriteByte('-')
		default: // undefined in the image; keep them
			b.WriteString(rest[i : i+n])
		}
		i += n
	}
	return strings.ToLower(b.String()), true
}

// envProps collects the configs set by KAFKA_* variables in environ
// (os.Environ's form), with the variable each came from.
func envProps(environ []string) (props, from map[string]string) {
	props, from = map[string]string{}, map[string]string{}
	for _, kv := range environ {
		name, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if k, ok := envKey(name); ok {
			props[k] = v
			from[k] = name
		}
	}
	return props, from
}

// clusterIDVar is the apache/kafka image's variable for the cluster id it
// formats a new data directory with; kbroker does the same.
const clusterIDVar = "CLUSTER_ID"

// lookupEnv returns the value of name in environ (os.Environ's form).
func lookupEnv(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}
