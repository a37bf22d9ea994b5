// Command kbroker runs a Kafka-compatible broker.
//
//	kbroker [--config server.properties] [--data-dir DIR | --ephemeral] [--override key=value]...
//
// Settings use Kafka's server.properties names. --override sets any of them,
// as Kafka's own start script does; overrides win over the file. With no
// arguments the broker listens on localhost:9092 with its data in
// ./kbroker-data. --ephemeral uses a temporary data directory removed at
// exit (the CI mode).
//
// Exit codes: 0 after a clean shutdown, 1 when the broker cannot start, 2 for
// bad usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kbroker/kbroker/broker"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
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

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("kbroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configFile = fs.String("config", "", "server.properties `file` with Kafka broker settings")
		dataDir    = fs.String("data-dir", "", "data `directory` (log.dirs); default ./kbroker-data")
		ephemeral  = fs.Bool("ephemeral", false, "use a temporary data directory, removed at exit")
		logLevel   = fs.String("log-level", "info", "log level: debug, info, warn or error")
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
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	props := map[string]string{}
	if *configFile != "" {
		f, err := os.Open(*configFile)
		if err != nil {
			logger.Error("cannot read config file", "err", err)
			return 1
		}
		props, err = parseProperties(f)
		f.Close()
		if err != nil {
			logger.Error("cannot parse config file", "file", *configFile, "err", err)
			return 1
		}
	}
	for k, v := range over {
		props[k] = v
	}
	if *dataDir != "" {
		props["log.dirs"] = *dataDir
	}
	if *ephemeral {
		dir, err := os.MkdirTemp("", "kbroker-ephemeral-")
		if err != nil {
			logger.Error("cannot create temporary data dir", "err", err)
			return 1
		}
		defer os.RemoveAll(dir)
		props["log.dirs"] = dir
		// A CI broker should not make the first consumer wait 3 s.
		if _, set := props["group.initial.rebalance.delay.ms"]; !set {
			props["group.initial.rebalance.delay.ms"] = "0"
		}
	}

	for _, k := range broker.UnknownKeys(props) {
		logger.Warn("unknown config ignored", "key", k)
	}
	cfg, err := broker.ParseConfig(props)
	if err != nil {
		logger.Error("invalid configuration", "err", err)
		return 1
	}
	cfg.Logger = logger

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
