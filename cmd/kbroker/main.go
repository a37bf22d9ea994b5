// Command kbroker runs a Kafka-compatible broker.
//
//	kbroker [--config server.properties] [--data-dir DIR | --ephemeral] [--override key=value]...
//	        [--log-level debug|info|warn|error] [--log-format text|json]
//	kbroker healthcheck [--config server.properties] [--override key=value]...
//	kbroker version
//
// Settings use Kafka's server.properties names. They come from, lowest
// precedence first: the defaults, the --config file, KAFKA_* environment
// variables mapped as the apache/kafka image maps them
// (KAFKA_ADVERTISED_LISTENERS is advertised.listeners; "__" is "_" and
// "___" is "-" in a name), and the flags (--override key=value, as Kafka's
// start script takes it, and --data-dir). Unknown keys are logged and
// ignored; an invalid value stops the start with an error naming the key.
// CLUSTER_ID, as in the apache/kafka image, is the cluster id of a new data
// directory.
// With no arguments the broker listens on localhost:9092, serves metrics
// and health on localhost:9644 (http.listener) and keeps its data in
// ./kbroker-data. --ephemeral uses a temporary data directory removed at
// exit (the CI mode).
//
// healthcheck reads the same configuration, asks the broker's /readyz on
// http.listener and exits 0 if it answers 200: a container HEALTHCHECK
// without a shell.
//
// Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT; a second signal
// exits at once with 1), 1 when the broker cannot start or is not healthy,
// 2 for bad usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kbroker/kbroker/broker"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
// Empty, it is taken from the module's build info.
var version = ""

func kbrokerVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		return "devel-" + rev[:min(12, len(rev))] + dirty
	}
	if v == "" {
		return "(devel)"
	}
	return v
}

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// overrides collects repeated --override key=value flags.
type overrides map[string]string

func (o overrides) String() string { return fmt.Sprint(map[string]string(o)) }

func (o overrides) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want key=value, got %q", kv)
	}
	o[strings.TrimSpace(k)] = strings.TrimSpace(v)
	return nil
}

// settings are the explicitly set configs and where each came from (for
// the warning about an unknown key).
type settings struct {
	props  map[string]string
	source map[string]string // key → "file x", "env KAFKA_X", "flag"
}

// loadSettings merges, lowest precedence first: the config file, the
// KAFKA_* environment and the flags.
func loadSettings(configFile string, environ []string, over overrides) (settings, error) {
	st := settings{props: map[string]string{}, source: map[string]string{}}
	if configFile != "" {
		f, err := os.Open(configFile)
		if err != nil {
			return st, fmt.Errorf("cannot read config file: %w", err)
		}
		props, err := parseProperties(f)
		f.Close()
		if err != nil {
			return st, fmt.Errorf("cannot parse config file %s: %w", configFile, err)
		}
		for k, v := range props {
			st.props[k], st.source[k] = v, "file "+configFile
		}
	}
	env, from := envProps(environ)
	for k, v := range env {
		st.props[k], st.source[k] = v, "env "+from[k]
	}
	for k, v := range over {
		st.props[k], st.source[k] = v, "flag"
	}
	return st, nil
}

func run(args, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintf(stdout, "kbroker %s %s %s/%s\n", kbrokerVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return 0
		case "healthcheck":
			return healthcheck(args[1:], environ, stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("kbroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configFile = fs.String("config", "", "server.properties `file` with Kafka broker settings")
		dataDir    = fs.String("data-dir", "", "data `directory` (log.dirs); default ./kbroker-data")
		ephemeral  = fs.Bool("ephemeral", false, "use a temporary data directory, removed at exit")
		logLevel   = fs.String("log-level", "info", "log level: debug, info, warn or error")
		logFormat  = fs.String("log-format", "text", "log format: text or json")
		over       = overrides{}
	)
	fs.Var(over, "override", "set a broker config, `key=value` (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kbroker: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *ephemeral && *dataDir != "" {
		fmt.Fprintln(stderr, "kbroker: --data-dir and --ephemeral exclude each other")
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "kbroker: --log-level: %v\n", err)
		return 2
	}
	var logger *slog.Logger
	switch opts := (&slog.HandlerOptions{Level: level}); *logFormat {
	case "text":
		logger = slog.New(slog.NewTextHandler(stderr, opts))
	case "json":
		logger = slog.New(slog.NewJSONHandler(stderr, opts))
	default:
		fmt.Fprintf(stderr, "kbroker: --log-format: want text or json, got %q\n", *logFormat)
		return 2
	}

	if *dataDir != "" {
		over["log.dirs"] = *dataDir
	}
	st, err := loadSettings(*configFile, environ, over)
	if err != nil {
		logger.Error("invalid configuration", "err", err)
		return 1
	}
	props := st.props
	if *ephemeral {
		dir, err := os.MkdirTemp("", "kbroker-ephemeral-")
		if err != nil {
			logger.Error("cannot create temporary data dir", "err", err)
			return 1
		}
		defer os.RemoveAll(dir)
		props["log.dirs"], st.source["log.dirs"] = dir, "flag"
		// A CI broker should not make the first consumer wait 3 s.
		if _, set := props["group.initial.rebalance.delay.ms"]; !set {
			props["group.initial.rebalance.delay.ms"] = "0"
		}
	}

	for _, k := range broker.UnknownKeys(props) {
		logger.Warn("unknown config ignored", "key", k, "from", st.source[k])
	}
	cfg, err := broker.ParseConfig(props)
	if err != nil {
		logger.Error("invalid configuration", "err", err)
		return 1
	}
	cfg.Logger = logger
	cfg.Version = kbrokerVersion()
	// The process's default registry: client_golang fills it with the Go
	// and process collectors when it loads, so the broker need not build
	// a second pair at start-up.
	cfg.Registerer, cfg.Gatherer = prometheus.DefaultRegisterer, prometheus.DefaultGatherer
	cfg.ClusterID = lookupEnv(environ, clusterIDVar)

	srv, err := broker.Start(cfg)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	sig := <-sigs
	logger.Info("shutting down", "signal", sig.String())
	go func() {
		<-sigs
		logger.Warn("second signal: exiting now")
		os.Exit(1)
	}()
	if err := srv.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		logger.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

// healthcheck asks /readyz of the broker configured as the broker would be
// (file, KAFKA_* environment, --override) and exits 0 if it answers 200.
func healthcheck(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kbroker healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configFile = fs.String("config", "", "server.properties `file` the broker was started with")
		timeout    = fs.Duration("timeout", 3*time.Second, "give up after this long")
		over       = overrides{}
	)
	fs.Var(over, "override", "a broker config the broker was started with, `key=value` (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kbroker healthcheck: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	st, err := loadSettings(*configFile, environ, over)
	if err != nil {
		fmt.Fprintf(stderr, "kbroker healthcheck: %v\n", err)
		return 1
	}
	cfg, err := broker.ParseConfig(st.props)
	if err != nil {
		fmt.Fprintf(stderr, "kbroker healthcheck: %v\n", err)
		return 1
	}
	if cfg.HTTPListener == "" {
		fmt.Fprintln(stderr, "kbroker healthcheck: http.listener is empty: no endpoint to ask")
		return 1
	}
	url := "http://" + dialAddr(cfg.HTTPListener) + "/readyz"
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "kbroker healthcheck: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "kbroker healthcheck: %s: %s\n", url, resp.Status)
		return 1
	}
	fmt.Fprintf(stdout, "ready (%s)\n", url)
	return 0
}

// dialAddr turns a listen address into one to dial: a wildcard or empty
// host is this machine.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
