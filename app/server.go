package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"ergo.services/ergo"
	"ergo.services/ergo/gen"

	"starcite/actors"
	"starcite/app/config"
	"starcite/archive"
	"starcite/dataplane"
	"starcite/edge"
	"starcite/sup"
)

// runServer boots a node and blocks until it stops: open the Raft node
// host, build the data plane and the HTTP edge, then start the Ergo node
// whose application supervises every actor.
func runServer(cfg config.Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("STARCITE_RAFT_DATA_DIR: %w", err)
	}
	cookie, err := nodeCookie(cfg)
	if err != nil {
		return err
	}
	logTransportSecurity(cfg, log)
	placement, err := dataplane.NewPlacement(cfg.WriteNodes, cfg.NumGroups, cfg.RF)
	if err != nil {
		return err
	}

	// Dragonboat reports leader changes from its own goroutine, possibly
	// before the Ergo node exists; such early events are dropped (the raft
	// actor probes leaders itself once it runs).
	var node atomic.Pointer[gen.Node]
	notifier := &actors.Notifier{}
	tails := &actors.Tails{}
	sockets := &actors.Sockets{}
	forwarder := &actors.Forwarder{}
	raft, err := dataplane.OpenRaft(dataplane.RaftConfig{
		Dir:       filepath.Join(cfg.DataDir, "raft"),
		Self:      cfg.NodeName,
		RaftPort:  cfg.RaftPort,
		Secret:    cookie,
		TLS:       cfg.ClusterTLS,
		RTT:       cfg.RaftRTT,
		Placement: placement,
		Notifier:  notifier,
		OnLeader: func(group int, leader, term uint64) {
			if n := node.Load(); n != nil {
				(*n).Send(actors.RaftName, actors.LeaderChanged{Group: group, Leader: leader, Term: term})
			}
		},
	})
	if err != nil {
		return err
	}
	defer raft.Close()

	// The archive connects in the background: writes do not need it (they
	// stay hot, up to STARCITE_PENDING_MAX_SIZE), only eviction and cold
	// replay do.
	store := archive.NewCached(archive.OpenLazy(cfg.Archive.Store, 5*time.Second, log.With("component", "archive")),
		cfg.Archive.ReadCacheMax)
	defer store.Close()

	plane := dataplane.NewPlane(raft, dataplane.PlaneConfig{
		Archive:            store,
		LeaderTTL:          cfg.LeaderTTL,
		ProposeTimeout:     2 * time.Second,
		PendingMax:         cfg.PendingMax,
		SessionTTL:         cfg.SessionTTL,
		SessionTouchOnRead: cfg.SessionTouchOnRead,
	})
	auth, closeAuth, err := newAuthenticator(cfg, log)
	if err != nil {
		return err
	}
	defer closeAuth()
	api := edge.NewServer(edge.Config{Node: cfg.NodeName, WriteNode: cfg.WriteNode(), Tails: tails, Sockets: sockets,
		Metrics: cfg.Telemetry, Ops: cfg.OpsPort != 0,
		MaxConns: cfg.MaxConnections}, plane, auth, log.With("component", "http"))
	stopOps, err := startOps(cfg, api, log)
	if err != nil {
		return err
	}
	defer stopOps()

	var opts gen.NodeOptions
	// Ergo otherwise sends anonymous usage reports to its authors.
	opts.Env = map[gen.Env]any{"disable_metrics": true}
	opts.Version = actors.NodeVersion(version)
	opts.Network.Cookie = cookie
	opts.Network.Registrar = staticRegistrar{}
	opts.Network.Acceptors = []gen.AcceptorOptions{{
		Host: cfg.NodeHost(), Port: uint16(cfg.DistPort), PortRange: uint16(cfg.DistPort),
	}}
	var distTLS gen.CertAuthManager
	if cfg.ClusterTLS != nil {
		distTLS = actors.DistributionTLS(cfg.ClusterTLS)
		opts.CertManager = distTLS
		opts.Network.Acceptors[0].CertManager = distTLS
	}
	opts.Log.Level = gen.LogLevelInfo
	opts.Log.DefaultLogger.Disable = true
	opts.Log.Loggers = []gen.Logger{{Name: "slog", Logger: ergoLogger{log}}}
	opts.ShutdownTimeout = 30 * time.Second
	plane.SetForwarder(forwarder)
	opts.Applications = []gen.ApplicationBehavior{sup.NewApp(sup.Deps{
		Self: cfg.NodeName,
		Discovery: actors.DiscoveryConfig{Self: cfg.NodeName, Peers: slices.Concat(cfg.ClusterNodes, cfg.WriteNodes),
			DistPort: cfg.DistPort, DNSQuery: cfg.DNSQuery, DNSEvery: cfg.DNSEvery, Basename: cfg.DNSBasename,
			TLS: distTLS},
		Raft:       raft,
		Plane:      plane,
		Archive:    store,
		FlushEvery: cfg.Archive.FlushEvery,
		HTTP:       api.HTTPServer(),
		HTTPAddr:   net.JoinHostPort(cfg.HTTPHost, strconv.Itoa(cfg.Port)),
		Ops: actors.OpsConfig{WriteNode: cfg.WriteNode(), DataDir: cfg.DataDir,
			RaftDir: filepath.Join(cfg.DataDir, "raft"), Version: version},
	})}

	log.Info("starting", "node", cfg.NodeName, "write_nodes", strings.Join(cfg.WriteNodes, ","),
		"groups", cfg.NumGroups, "replication_factor", cfg.RF, "local_groups", len(raft.LocalGroups()),
		"data_dir", cfg.DataDir, "auth", cfg.AuthMode, "archive", cfg.Archive.Store.Adapter)
	n, err := ergo.StartNode(gen.Atom(cfg.NodeName), opts)
	if err != nil {
		return fmt.Errorf("start node %s: %w", cfg.NodeName, err)
	}
	node.Store(&n)
	notifier.SetNode(n)
	tails.SetNode(n)
	sockets.SetNode(n)
	forwarder.SetNode(n)
	n.Wait()
	// The node serves no client any more; its replicas still run. A member
	// of a cluster hands its leaderships over before they close, so that
	// no group waits for an election (docs/operations.md#stopping-a-node).
	if len(cfg.WriteNodes) > 1 && cfg.WriteNode() && cfg.ShutdownDrain > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownDrain)
		actors.HandOffLeaderships(ctx, plane, log)
		cancel()
	}
	log.Info("stopped", "node", cfg.NodeName)
	return nil
}

// nodeCookie returns the distribution cookie: STARCITE_COOKIE, or for a
// single node a random one kept in <data dir>/cookie (like Erlang's
// .erlang.cookie) so that `starcite ops` on the same machine can read it.
func nodeCookie(cfg config.Config) (string, error) {
	if cfg.Cookie != "" {
		return cfg.Cookie, nil
	}
	path := filepath.Join(cfg.DataDir, "cookie")
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read cookie file: %w", err)
	}
	var raw [24]byte
	rand.Read(raw[:])
	cookie := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(cookie+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write cookie file: %w", err)
	}
	return cookie, nil
}

// newAuthenticator returns the authenticator of STARCITE_AUTH_MODE and
// the function that stops its background work. In jwt mode the JWKS is
// fetched once here; a JWKS that is down does not stop the boot (requests
// get 401 until it is reachable).
func newAuthenticator(cfg config.Config, log *slog.Logger) (edge.Authenticator, func(), error) {
	if cfg.AuthMode != "jwt" {
		return edge.NoAuth{}, func() {}, nil
	}
	a, err := edge.NewJWTAuth(edge.JWTConfig{
		Issuer:         cfg.JWTIssuer,
		Audience:       cfg.JWTAudience,
		JWKSURL:        cfg.JWKSURL,
		Leeway:         cfg.JWTLeeway,
		JWKSRefresh:    cfg.JWKSRefresh,
		JWKSHardExpiry: cfg.JWKSHardExpiry,
	}, log.With("component", "auth"))
	if err != nil {
		return nil, nil, err
	}
	return a, a.Close, nil
}

// logTransportSecurity says at boot how the node's connections are
// protected, and warns where they are not although they leave the
// machine (docs/security.md#checklist).
func logTransportSecurity(cfg config.Config, log *slog.Logger) {
	switch {
	case cfg.ClusterTLS != nil:
		log.Info("inter-node ports use mutual TLS", "ca", cfg.ClusterTLS.CAFile, "cert", cfg.ClusterTLS.CertFile)
	case cfg.Clustered() && cfg.ClusterInsecure:
		log.Warn("STARCITE_CLUSTER_INSECURE: the Raft and distribution ports run without TLS; anyone who reaches them "+
			"can read the cluster's traffic, and anyone who also has the cookie can act as a node",
			"raft_port", cfg.RaftPort, "dist_port", cfg.DistPort)
	}
	if cfg.OpsPort != 0 && cfg.OpsPprof && !edge.IsLoopback(cfg.OpsHost) {
		log.Warn("STARCITE_PPROF_ALLOW_REMOTE: pprof serves the node's internals without authentication",
			"addr", net.JoinHostPort(cfg.OpsHost, strconv.Itoa(cfg.OpsPort)))
	}
	if s := cfg.Archive.Store; s.Adapter == "postgres" {
		if host, ok := postgresWithoutTLS(s.PostgresURL); ok {
			log.Warn("the Postgres archive URL names a non-loopback host without sslmode=require, verify-ca or verify-full: "+
				"the connection may run without TLS", "host", host)
		}
	}
}

// postgresWithoutTLS reports the host of a Postgres URL that leaves the
// machine without requiring TLS (sslmode absent, disable, allow or
// prefer: libpq's default, prefer, falls back to plaintext silently).
func postgresWithoutTLS(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false
	}
	switch u.Query().Get("sslmode") {
	case "require", "verify-ca", "verify-full":
		return "", false
	}
	for _, h := range strings.Split(u.Host, ",") {
		host := h
		if hp, _, err := net.SplitHostPort(h); err == nil {
			host = hp
		}
		if host != "" && !edge.IsLoopback(host) && !strings.HasPrefix(host, "/") {
			return host, true
		}
	}
	return "", false
}
