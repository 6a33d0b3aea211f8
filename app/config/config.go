// Package config reads a node's configuration from environment variables
// (docs/operations.md#configuration): every variable, its default, its
// validation and the settings derived from others. Bad input stops here
// with one error naming the variable. Package main loads it at boot; the
// operator commands read the variables they share with the server
// through Env.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"starcite/dataplane"
	"starcite/edge"
)

// Config is the whole configuration of a node, read from the environment
// (docs/operations.md#configuration).
type Config struct {
	NodeName   string   // NODE_NAME: name@host; host is what the node binds and advertises
	HTTPHost   string   // STARCITE_HTTP_HOST
	Port       int      // PORT
	RaftPort   int      // STARCITE_RAFT_PORT
	DistPort   int      // STARCITE_DIST_PORT: Ergo distribution
	Cookie     string   // STARCITE_COOKIE
	WriteNodes []string // STARCITE_WRITE_NODE_IDS
	RF         int      // STARCITE_WRITE_REPLICATION_FACTOR
	NumGroups  int      // STARCITE_NUM_GROUPS
	DataDir    string   // STARCITE_RAFT_DATA_DIR
	RaftRTT    time.Duration

	ClusterNodes []string      // CLUSTER_NODES: static peers
	DNSQuery     string        // DNS_CLUSTER_QUERY: peers polled from DNS
	DNSEvery     time.Duration // DNS_POLL_INTERVAL_MS
	DNSBasename  string        // DNS_CLUSTER_NODE_BASENAME
	LeaderTTL    time.Duration // STARCITE_ROUTE_LEADER_CACHE_TTL_MS

	// ClusterTLS is the mutual TLS of the inter-node ports, from
	// STARCITE_CLUSTER_TLS_CA, _CERT and _KEY (docs/security.md); nil
	// when they are unset.
	ClusterTLS *dataplane.PeerTLS
	// ClusterInsecure (STARCITE_CLUSTER_INSECURE) lets a cluster node on a
	// non-loopback address run without ClusterTLS.
	ClusterInsecure bool

	Telemetry bool // STARCITE_ENABLE_TELEMETRY: serve /metrics

	// MaxConnections caps the client connections (HTTP and tail
	// WebSockets together) a node holds open: a request beyond it gets 503
	// too_many_connections. STARCITE_MAX_CONNECTIONS, 0 = no cap.
	MaxConnections int

	AuthMode          string // none | jwt
	AllowInsecureNone bool
	JWTIssuer         string        // STARCITE_AUTH_JWT_ISSUER (jwt mode)
	JWTAudience       string        // STARCITE_AUTH_JWT_AUDIENCE (jwt mode)
	JWKSURL           string        // STARCITE_AUTH_JWKS_URL (jwt mode)
	JWTLeeway         time.Duration // STARCITE_AUTH_JWT_LEEWAY_SECONDS
	JWKSRefresh       time.Duration // STARCITE_AUTH_JWKS_REFRESH_MS
	JWKSHardExpiry    time.Duration // STARCITE_AUTH_JWKS_HARD_EXPIRY_MS

	Archive            ArchiveConfig
	PendingMax         int64 // STARCITE_PENDING_MAX_SIZE
	SessionTTL         time.Duration
	SessionTouchOnRead bool

	LogLevel  string
	LogFormat string

	// ShutdownDrain bounds the leadership handoff of a stopping member of
	// a cluster (STARCITE_SHUTDOWN_DRAIN_TIMEOUT_MS; 0: none).
	ShutdownDrain time.Duration

	// The ops listener (docs/operations.md#ops-listener): /health/*,
	// /metrics and pprof on a port of their own; none when OpsPort is 0.
	OpsPort int    // STARCITE_OPS_PORT, else STARCITE_PPROF_PORT
	OpsHost string // STARCITE_OPS_HOST, else STARCITE_PPROF_HOST, else the HTTP host
	// OpsPprof: the ops listener serves pprof (docs/decisions.md#d16): its
	// host is loopback, or STARCITE_PPROF_ALLOW_REMOTE allows more.
	OpsPprof     bool
	PprofTimeout time.Duration // STARCITE_PPROF_TIMEOUT_MS: write timeout of the ops listener (a profile)
	// PprofAllowRemote (STARCITE_PPROF_ALLOW_REMOTE) lets pprof be served
	// on a non-loopback address.
	PprofAllowRemote bool
}

// DefaultNodeName is a single node on loopback.
const DefaultNodeName = "starcite@127.0.0.1"

// Load reads the whole configuration; the error names the first variable
// with an invalid value or a missing dependency.
func Load(e *Env) (Config, error) {
	c := Config{
		NodeName:  e.Str("NODE_NAME", DefaultNodeName),
		Port:      e.Port("PORT", 4000),
		RaftPort:  e.Port("STARCITE_RAFT_PORT", 7100),
		DistPort:  e.Port("STARCITE_DIST_PORT", 7200),
		NumGroups: e.posInt("STARCITE_NUM_GROUPS", 256),
		DataDir:   e.Str("STARCITE_RAFT_DATA_DIR", "./data"),
		RaftRTT:   e.millis("STARCITE_RAFT_RTT_MS", 100*time.Millisecond),

		ClusterNodes: e.list("CLUSTER_NODES"),
		DNSQuery:     e.Str("DNS_CLUSTER_QUERY", ""),
		DNSEvery:     e.millis("DNS_POLL_INTERVAL_MS", 5*time.Second),
		DNSBasename:  e.Str("DNS_CLUSTER_NODE_BASENAME", "starcite"),
		LeaderTTL:    e.millis("STARCITE_ROUTE_LEADER_CACHE_TTL_MS", 10*time.Second),

		Telemetry:         e.boolean("STARCITE_ENABLE_TELEMETRY", true),
		MaxConnections:    e.nonNegInt("STARCITE_MAX_CONNECTIONS", 10_000),
		AllowInsecureNone: e.boolean("STARCITE_ALLOW_INSECURE_NONE", false),

		PendingMax:         e.size("STARCITE_PENDING_MAX_SIZE", 1<<30),
		SessionTTL:         e.millis("STARCITE_SESSION_STORE_TTL_MS", 6*time.Hour),
		SessionTouchOnRead: e.boolean("STARCITE_SESSION_STORE_TOUCH_ON_READ", true),

		ShutdownDrain: time.Duration(e.nonNegInt("STARCITE_SHUTDOWN_DRAIN_TIMEOUT_MS", 30_000)) * time.Millisecond,

		LogLevel:  strings.ToLower(e.Str("STARCITE_LOG_LEVEL", "info")),
		LogFormat: strings.ToLower(e.Str("STARCITE_LOG_FORMAT", "text")),

		OpsPort:      e.Port("STARCITE_OPS_PORT", 0),
		PprofTimeout: e.millis("STARCITE_PPROF_TIMEOUT_MS", 60*time.Second),
	}
	if e.err != nil {
		return c, e.err
	}
	if err := c.resolve(e); err != nil {
		return c, err
	}
	if err := c.resolveArchive(e); err != nil {
		return c, err
	}
	return c, e.err
}

// resolve checks the variables that depend on each other and fills in
// defaults derived from others.
func (c *Config) resolve(e *Env) error {
	name, host, ok := strings.Cut(c.NodeName, "@")
	if !ok || name == "" || host == "" || strings.ContainsAny(c.NodeName, " ,") {
		return fmt.Errorf("NODE_NAME: invalid value %q (expected name@host, e.g. starcite@10.0.0.5)", c.NodeName)
	}

	c.WriteNodes = e.list("STARCITE_WRITE_NODE_IDS")
	if len(c.WriteNodes) == 0 {
		if len(c.ClusterNodes) > 0 || c.DNSQuery != "" {
			// A clustered node must know the write nodes: defaulting to
			// "just me" would split the cluster into single-node islands.
			return errors.New("STARCITE_WRITE_NODE_IDS: required when CLUSTER_NODES or DNS_CLUSTER_QUERY is set")
		}
		c.WriteNodes = []string{c.NodeName}
	}
	for _, n := range c.ClusterNodes {
		if nm, h, ok := strings.Cut(n, "@"); !ok || nm == "" || h == "" {
			return fmt.Errorf("CLUSTER_NODES: invalid node %q (expected name@host)", n)
		}
	}
	for _, n := range c.WriteNodes {
		if nm, h, ok := strings.Cut(n, "@"); !ok || nm == "" || h == "" {
			return fmt.Errorf("STARCITE_WRITE_NODE_IDS: invalid node %q (expected name@host)", n)
		}
	}
	if rf, set := e.raw("STARCITE_WRITE_REPLICATION_FACTOR"); set {
		c.RF = e.posInt("STARCITE_WRITE_REPLICATION_FACTOR", 3)
		if e.err == nil && c.RF > len(c.WriteNodes) {
			return fmt.Errorf("STARCITE_WRITE_REPLICATION_FACTOR: %s exceeds the %d write node(s) of STARCITE_WRITE_NODE_IDS", rf, len(c.WriteNodes))
		}
	} else {
		c.RF = min(3, len(c.WriteNodes))
	}

	c.Cookie = e.Str("STARCITE_COOKIE", "")
	if err := c.resolveCluster(e); err != nil {
		return err
	}
	c.DataDir = filepath.Clean(c.DataDir)

	mode := strings.ToLower(e.Str("STARCITE_AUTH_MODE", "jwt"))
	switch mode {
	case "none", "jwt":
		c.AuthMode = mode
	default:
		return fmt.Errorf("STARCITE_AUTH_MODE: invalid value %q (expected jwt or none)", mode)
	}
	if c.AuthMode == "jwt" {
		if err := c.resolveJWT(e); err != nil {
			return err
		}
	}

	// none mode serves every tenant's data without a token: bind loopback
	// unless the operator explicitly accepts the risk
	// (docs/decisions.md#d12).
	httpHost, hostSet := e.raw("STARCITE_HTTP_HOST")
	switch {
	case !hostSet && c.AuthMode == "none" && !c.AllowInsecureNone:
		c.HTTPHost = "127.0.0.1"
	case !hostSet:
		c.HTTPHost = "0.0.0.0"
	default:
		c.HTTPHost = httpHost
	}
	if c.AuthMode == "none" && !c.AllowInsecureNone && !edge.IsLoopback(c.HTTPHost) {
		return fmt.Errorf("STARCITE_HTTP_HOST: %q is not a loopback address and STARCITE_AUTH_MODE=none would serve it without authentication; set STARCITE_ALLOW_INSECURE_NONE=true to force it", c.HTTPHost)
	}

	if err := c.resolveOps(e); err != nil {
		return err
	}

	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("STARCITE_LOG_LEVEL: invalid value %q (expected debug, info, warn or error)", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("STARCITE_LOG_FORMAT: invalid value %q (expected text or json)", c.LogFormat)
	}
	return nil
}

// resolveOps places the ops listener (docs/operations.md#ops-listener):
// STARCITE_OPS_PORT and STARCITE_OPS_HOST, falling back to the pprof
// variables of earlier versions, and the host to the API's. Profiles
// reveal the node's internals and cost CPU, so pprof is served off
// loopback only on request (docs/security.md#checklist).
func (c *Config) resolveOps(e *Env) error {
	if c.OpsPort == 0 {
		c.OpsPort = e.Port("STARCITE_PPROF_PORT", 0)
	}
	pprofHost, pprofHostSet := e.raw("STARCITE_PPROF_HOST")
	c.PprofAllowRemote = e.boolean("STARCITE_PPROF_ALLOW_REMOTE", false)
	if e.err != nil {
		return e.err
	}
	if pprofHostSet && !edge.IsLoopback(pprofHost) && !c.PprofAllowRemote {
		return fmt.Errorf("STARCITE_PPROF_HOST: %q is not a loopback address and pprof serves the node's internals "+
			"without authentication; set STARCITE_PPROF_ALLOW_REMOTE=1 to serve it there", pprofHost)
	}
	c.OpsHost = e.Str("STARCITE_OPS_HOST", "")
	switch {
	case c.OpsHost != "":
	case pprofHostSet:
		c.OpsHost = pprofHost
	default:
		c.OpsHost = c.HTTPHost
	}
	if c.OpsPort != 0 && c.OpsPort == c.Port {
		return fmt.Errorf("STARCITE_OPS_PORT: %d is also PORT; the ops listener needs a port of its own", c.OpsPort)
	}
	c.OpsPprof = edge.IsLoopback(c.OpsHost) || c.PprofAllowRemote
	return nil
}

// resolveJWT reads the jwt-mode variables
// (docs/operations.md#authentication-variables). Issuer, audience and JWKS
// URL are required: jwt mode refuses to boot without them
// (docs/decisions.md#d12) instead of falling back to example values as
// upstream.
func (c *Config) resolveJWT(e *Env) error {
	for _, v := range []struct {
		name string
		dst  *string
	}{
		{"STARCITE_AUTH_JWT_ISSUER", &c.JWTIssuer},
		{"STARCITE_AUTH_JWT_AUDIENCE", &c.JWTAudience},
		{"STARCITE_AUTH_JWKS_URL", &c.JWKSURL},
	} {
		val, ok := e.raw(v.name)
		if !ok {
			return fmt.Errorf("%s: required when STARCITE_AUTH_MODE=jwt", v.name)
		}
		*v.dst = val
	}
	if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The value may hold credentials: it is echoed redacted.
		return fmt.Errorf("STARCITE_AUTH_JWKS_URL: invalid value %q (expected an http or https URL)", edge.RedactURL(c.JWKSURL))
	}
	maxLeeway := int(edge.MaxLeeway / time.Second)
	leeway := e.nonNegInt("STARCITE_AUTH_JWT_LEEWAY_SECONDS", 1)
	if leeway > maxLeeway {
		v, _ := e.raw("STARCITE_AUTH_JWT_LEEWAY_SECONDS")
		e.fail("STARCITE_AUTH_JWT_LEEWAY_SECONDS", v, fmt.Sprintf("expected an integer from 0 to %d", maxLeeway))
	}
	c.JWTLeeway = time.Duration(leeway) * time.Second
	c.JWKSRefresh = e.millis("STARCITE_AUTH_JWKS_REFRESH_MS", 60*time.Second)
	// The hard expiry defaults to the refresh interval (docs/api.md#jwks).
	c.JWKSHardExpiry = e.millis("STARCITE_AUTH_JWKS_HARD_EXPIRY_MS", c.JWKSRefresh)
	return e.err
}

// minCookieBytes is the shortest cookie a cluster accepts: it is the
// secret of the distribution and of the Raft deployment id.
const minCookieBytes = 16

// Clustered reports whether the node has peers: more than one write node,
// or peers named by CLUSTER_NODES or DNS_CLUSTER_QUERY.
func (c *Config) Clustered() bool {
	return len(c.WriteNodes) > 1 || len(c.ClusterNodes) > 0 || c.DNSQuery != ""
}

// resolveCluster reads what guards the inter-node ports
// (docs/security.md#inter-node-ports): the cookie, the TLS files and the
// insecure opt-out. A cluster node on a non-loopback address refuses to
// boot without TLS unless STARCITE_CLUSTER_INSECURE is set.
func (c *Config) resolveCluster(e *Env) error {
	if c.Clustered() && len(c.Cookie) < minCookieBytes {
		if c.Cookie == "" {
			return errors.New("STARCITE_COOKIE: required in a cluster (it guards the distribution port and names the Raft deployment)")
		}
		return fmt.Errorf("STARCITE_COOKIE: %d bytes is too short for a cluster (at least %d; e.g. 32 random hex digits)",
			len(c.Cookie), minCookieBytes)
	}
	c.ClusterInsecure = e.boolean("STARCITE_CLUSTER_INSECURE", false)
	if e.err != nil {
		return e.err
	}
	t, err := ClusterTLS(e)
	switch {
	case err != nil:
		return err
	case t != nil:
		if err := t.CheckHost(c.NodeHost()); err != nil {
			return fmt.Errorf("STARCITE_CLUSTER_TLS_CERT: %w", err)
		}
		c.ClusterTLS = t
	case c.Clustered() && !edge.IsLoopback(c.NodeHost()) && !c.ClusterInsecure:
		return fmt.Errorf("STARCITE_CLUSTER_TLS_CA, STARCITE_CLUSTER_TLS_CERT, STARCITE_CLUSTER_TLS_KEY: required for a cluster node "+
			"on a non-loopback address (%s), or set STARCITE_CLUSTER_INSECURE=1 to run its Raft and distribution ports without authentication",
			c.NodeHost())
	}
	return nil
}

// ClusterTLS reads STARCITE_CLUSTER_TLS_CA, _CERT and _KEY: all three
// (loaded and checked) or none (nil). The operator tools read them too.
func ClusterTLS(e *Env) (*dataplane.PeerTLS, error) {
	ca, caSet := e.raw("STARCITE_CLUSTER_TLS_CA")
	cert, certSet := e.raw("STARCITE_CLUSTER_TLS_CERT")
	key, keySet := e.raw("STARCITE_CLUSTER_TLS_KEY")
	switch {
	case caSet && certSet && keySet:
		t, err := dataplane.LoadPeerTLS(ca, cert, key)
		if err != nil {
			return nil, fmt.Errorf("STARCITE_CLUSTER_TLS_CA, STARCITE_CLUSTER_TLS_CERT, STARCITE_CLUSTER_TLS_KEY: %w", err)
		}
		return t, nil
	case caSet || certSet || keySet:
		return nil, errors.New("STARCITE_CLUSTER_TLS_CA, STARCITE_CLUSTER_TLS_CERT, STARCITE_CLUSTER_TLS_KEY: set all three or none")
	}
	return nil, nil
}

// NodeHost is the host part of the node name.
func (c *Config) NodeHost() string {
	_, host, _ := strings.Cut(c.NodeName, "@")
	return host
}

// WriteNode reports whether this node is a write node.
func (c *Config) WriteNode() bool {
	for _, n := range c.WriteNodes {
		if n == c.NodeName {
			return true
		}
	}
	return false
}
