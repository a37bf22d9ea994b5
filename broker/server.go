package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kbroker/kbroker/idempotence"
	"github.com/kbroker/kbroker/internal/acl"
	"github.com/kbroker/kbroker/internal/kvlog"
	"github.com/kbroker/kbroker/storage"
)

// Server is a running broker. Start it with Start; stop it with Close.
type Server struct {
	cfg       Config
	logger    *slog.Logger
	logs      *storage.LogManager
	clusterID string
	hostname  string // advertised for a listener with an empty host, as Kafka does
	sessions  *fetchSessionCache
	// authz decides requests (authorizer.go); nil when
	// authorizer.class.name is empty: nothing is authorized.
	authz    *acl.Authorizer
	aclStore *aclStore // a single node's ACLs; nil in a cluster or without authz
	// coord is the group and transaction coordinators: set once on one
	// node; in a cluster, set while this node is the active controller and
	// nil otherwise (see cluster.runCoordinators).
	coord atomic.Pointer[coordinators]
	// producerIDs hands out ids to idempotent producers.
	producerIDs *idempotence.ProducerIDManager
	// txnAppends orders transactional appends against the markers that end
	// transactions: a produce holds it shared from its verification (the
	// partition is in the producer's Ongoing transaction) to the end of
	// its append; marker writing holds it exclusively. The coordinator
	// moves a transaction to PrepareCommit/PrepareAbort before writing its
	// markers, so a produce verified after that fails, and one verified
	// before lands before the markers: no transactional batch lands after
	// its transaction's marker, where it would hold the last stable offset
	// back for ever (Kafka's VerificationGuard).
	txnAppends sync.RWMutex

	mu        sync.Mutex
	listeners []*boundListener
	conns     map[*conn]struct{}
	closed    bool
	// shuttingDown is set by the first Close, which may still serve
	// during a controlled shutdown before it sets closed.
	shuttingDown bool
	closing      chan struct{} // closed by Close: long polls and loops stop
	wg           sync.WaitGroup

	// cluster links this broker to the metadata quorum and its replicas;
	// nil on a single node (Config.Clustered).
	cluster *cluster

	// scram is a single node's SCRAM credentials (nil in a cluster, where
	// the controller's image has them).
	scram *scramStore

	metrics *metrics
	http    *httpEndpoint // nil when http.listener is empty
	ready   atomic.Bool   // recovery done, metadata loaded, listeners bound; /readyz
}

type boundListener struct {
	Listener // as configured, port resolved if it was 0
	ln       net.Listener

	connsOpen     prometheus.Gauge
	connsAccepted prometheus.Counter
}

// Start binds the HTTP endpoint (so /healthz answers during recovery) and
// every listener, opens (and recovers) the log directory and starts
// serving. The returned Server is ready for clients and /readyz says so.
func Start(cfg Config) (*Server, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	began := time.Now()
	hostname, herr := os.Hostname()
	if herr != nil {
		hostname = "localhost"
	}
	s := &Server{
		cfg:      cfg,
		logger:   logger,
		hostname: hostname,
		sessions: newFetchSessionCache(),
		conns:    make(map[*conn]struct{}),
		closing:  make(chan struct{}),
		authz:    newAuthorizer(cfg),
	}
	reg, gatherer := cfg.Registerer, cfg.Gatherer
	if g, ok := reg.(prometheus.Gatherer); ok && gatherer == nil {
		gatherer = g
	}
	if (reg == nil) != (gatherer == nil) {
		return nil, errors.New("broker: Config.Registerer and Config.Gatherer go together")
	}
	if cfg.Clustered() && cfg.ClusterID == "" {
		cfg.ClusterID = clusterIDFromVoters(cfg.QuorumVoters)
		s.cfg.ClusterID = cfg.ClusterID
	}
	// The log directory opens (for a new one, mostly a wait on the disk)
	// while the metrics are built and the HTTP endpoint and the listeners
	// bind.
	type opened struct {
		logs *storage.LogManager
		err  error
	}
	logsOpened := make(chan opened, 1)
	logFlush := newLogFlushHistogram()
	go func() {
		logs, err := storage.OpenLogManager(storage.LogManagerOptions{
			Dir:                               cfg.LogDir,
			Defaults:                          cfg.LogDefaults,
			RetentionCheckInterval:            cfg.LogRetentionCheckInterval,
			FlushCheckInterval:                cfg.LogFlushSchedulerInterval,
			ProducerIDExpiration:              cfg.ProducerIDExpiration,
			ProducerIDExpirationCheckInterval: cfg.ProducerIDExpirationCheckInterval,
			ClusterID:                         cfg.ClusterID,
			DeferNewMetaSync:                  true, // SyncNewInBackground below
			Cleaner:                           &cfg.LogCleaner,
			Logger:                            logger,
			OnFlush:                           func(d time.Duration) { logFlush.Observe(d.Seconds()) },
		})
		logsOpened <- opened{logs, err}
	}()
	if reg == nil {
		// A private registry gets the Go runtime's and the process's
		// metrics too, as prometheus' default registry has them.
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gatherer = r, r
	}
	var err error
	if s.metrics, err = newMetrics(reg, s, cfg.Version, logFlush); err != nil {
		err = fmt.Errorf("broker: metrics: %w", err)
	}
	// Listeners are bound before recovery, as Kafka's acceptors are, and
	// accept once the broker is ready: a client that connects meanwhile
	// waits in the backlog and is answered as soon as the broker serves,
	// instead of being refused and retrying. A port in use also fails the
	// start.
	if err == nil {
		err = s.startHTTP(gatherer)
	}
	if err == nil {
		err = s.bindListeners()
	}
	o := <-logsOpened
	if err != nil || o.err != nil {
		if o.logs != nil {
			o.logs.Close()
		}
		s.Close()
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("broker: open log dir %s: %w", cfg.LogDir, o.err)
	}
	logs := o.logs
	s.logs = logs
	s.clusterID = logs.Meta().ClusterID()
	if s.authz != nil && !cfg.Clustered() {
		if err := s.loadACLs(); err != nil {
			s.Close()
			return nil, err
		}
	}
	if cfg.Clustered() {
		s.producerIDs = idempotence.NewRemoteProducerIDManager(s.allocateProducerIDs)
	} else {
		s.producerIDs = idempotence.NewProducerIDManager(logs.Meta())
		coord, err := s.newCoordinators(kvlog.Local(logs.Meta()))
		if err != nil {
			s.Close()
			return nil, err
		}
		s.coord.Store(coord)
		if err := s.loadScramCredentials(); err != nil {
			s.Close()
			return nil, err
		}
	}
	// A new data dir's meta.db, with every package's buckets, becomes
	// durable in one sync rather than one per package, while the broker
	// already serves: every metadata write waits for it.
	logs.Meta().SyncNewInBackground()
	s.goroutine(func() {
		if err := logs.Meta().WaitDurable(); err != nil {
			logger.Error("a new meta.db could not be made durable: every metadata write fails; restart the broker", "err", err)
		}
	})
	if cfg.Clustered() {
		// Joins the quorum and catches up before any client is served.
		if err := s.startCluster(); err != nil {
			s.Close()
			return nil, err
		}
		if s.authz != nil && !s.authz.IsSuperUser(anonymousPrincipal.String()) {
			logger.Warn("authorizer on: brokers reach each other in PLAINTEXT as User:ANONYMOUS, so replication and transaction markers need CLUSTER_ACTION on the cluster for it (or super.users=User:ANONYMOUS, as Kafka needs with a PLAINTEXT inter-broker listener)")
		}
	} else {
		for _, l := range cfg.ControllerListeners {
			logger.Info("controller listener not bound: a single node needs no KRaft quorum", "listener", l.String())
		}
	}
	if err := s.bootstrapScramUsers(); err != nil {
		s.Close()
		return nil, err
	}
	for _, bl := range s.listeners {
		s.goroutine(func() { s.acceptLoop(bl) })
	}
	s.ready.Store(true)
	s.goroutine(func() {
		// Off the start-up path: a first client's requests would share
		// the CPU with it.
		select {
		case <-time.After(time.Second):
			s.metrics.precreateAPIs()
		case <-s.closing:
		}
	})
	logger.Info("kbroker started", "version", cfg.Version, "listeners", s.Addrs(), "http", s.HTTPAddr(), "data_dir", cfg.LogDir,
		"topics", len(logs.Topics()), "cluster_id", s.clusterID, "ready_in", time.Since(began).Round(time.Microsecond))
	return s, nil
}

// bindListeners binds every client listener; Start accepts on them once
// the broker is ready.
func (s *Server) bindListeners() error {
	for _, l := range s.cfg.Listeners {
		ln, err := net.Listen("tcp", l.Addr())
		if err != nil {
			return fmt.Errorf("broker: listen %s: %w", l, err)
		}
		bound := &boundListener{Listener: l, ln: ln}
		bound.Port = ln.Addr().(*net.TCPAddr).Port
		bound.connsOpen = s.metrics.connsOpen.WithLabelValues(l.Name)
		bound.connsAccepted = s.metrics.connsAccepted.WithLabelValues(l.Name)
		s.listeners = append(s.listeners, bound)
	}
	return nil
}

// Addr returns the host:port the first listener is bound to; with port 0 in
// the config it carries the port the OS picked.
func (s *Server) Addr() string { return s.listeners[0].Addr() }

// Addrs returns every bound listener as NAME://host:port.
func (s *Server) Addrs() []string {
	var out []string
	for _, l := range s.listeners {
		out = append(out, l.String())
	}
	return out
}

// ListenerAddr returns the host:port listener name is bound to, "" if
// there is none.
func (s *Server) ListenerAddr(name string) string {
	for _, l := range s.listeners {
		if l.Name == name {
			return l.Addr()
		}
	}
	return ""
}

// ClusterID is the id Metadata and DescribeCluster report.
func (s *Server) ClusterID() string { return s.clusterID }

// goroutine runs f tracked by the server's WaitGroup, unless the server is
// closing (nats-server's startGoRoutine).
func (s *Server) goroutine(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Server) acceptLoop(bl *boundListener) {
	var delay time.Duration
	for {
		nc, err := bl.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failures (EMFILE...) back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger.Warn("accept failed", "listener", bl.Name, "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-s.closing:
				return
			}
		}
		delay = 0
		c := newConn(s, nc, bl)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		bl.connsAccepted.Inc()
		bl.connsOpen.Inc()
		if !s.goroutine(c.serve) {
			s.removeConn(c)
			nc.Close()
		}
	}
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.listener.connsOpen.Dec()
}

// Close stops accepting, closes every connection, waits for every goroutine
// and closes the logs cleanly (the next start skips recovery). Safe to call
// more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.shuttingDown {
		s.mu.Unlock()
		return nil
	}
	s.shuttingDown = true
	s.ready.Store(false)
	s.mu.Unlock()
	if s.cluster != nil && s.cluster.ready.Load() && s.cfg.ControlledShutdownEnable {
		// While still serving: clients follow the leaders to their new
		// brokers before this one closes its connections. Bounded by the
		// session timeout, after which the controller fences this broker
		// anyway (and without a quorum it never answers).
		s.cluster.controlledShutdown(s.cfg.BrokerSessionTimeout)
	}
	s.mu.Lock()
	s.closed = true
	close(s.closing)
	for _, l := range s.listeners {
		l.ln.Close()
	}
	for c := range s.conns {
		c.raw.Close()
	}
	s.mu.Unlock()
	if coord := s.coord.Swap(nil); coord != nil {
		coord.close() // before the logs its markers go to, and the cluster its state
	}
	if s.cluster != nil {
		s.cluster.close() // fetchers stop before the logs they append to close
	}
	s.stopHTTP()
	s.wg.Wait()
	var err error
	if s.logs != nil {
		err = s.logs.Close()
	}
	s.logger.Info("kbroker stopped")
	return err
}
