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
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
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

	Archive            ArchiveConfig
	PendingMax         int64 // STARCITE_PENDING_MAX_SIZE
	SessionTTL         time.Duration
	SessionTouchOnRead bool

	LogLevel  string
	LogFormat string

	// pprof (docs/decisions.md#d16): off unless STARCITE_PPROF_PORT is set.
	PprofPort    int           // STARCITE_PPROF_PORT
	PprofHost    string        // STARCITE_PPROF_HOST, loopback by default
	PprofTimeout time.Duration // STARCITE_PPROF_TIMEOUT_MS: write timeout of a profile request
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

		LogLevel:  strings.ToLower(e.Str("STARCITE_LOG_LEVEL", "info")),
		LogFormat: strings.ToLower(e.Str("STARCITE_LOG_FORMAT", "text")),

		PprofPort:    e.Port("STARCITE_PPROF_PORT", 0),
		PprofHost:    e.Str("STARCITE_PPROF_HOST", "127.0.0.1"),
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
	if len(c.WriteNodes) > 1 && c.Cookie == "" {
		return errors.New("STARCITE_COOKIE: required with more than one write node (it guards the cluster's distribution port)")
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
	if c.AuthMode == "none" && !c.AllowInsecureNone && !isLoopback(c.HTTPHost) {
		return fmt.Errorf("STARCITE_HTTP_HOST: %q is not a loopback address and STARCITE_AUTH_MODE=none would serve it without authentication; set STARCITE_ALLOW_INSECURE_NONE=true to force it", c.HTTPHost)
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

// resolveJWT reads the jwt-mode variables
// (docs/operations.md#authentication-variables). Issuer, audience and JWKS
// URL are required: jwt mode refuses to boot without them
// (docs/decisions.md#d12) instead of falling back to example values as
// upstream.
func (c *Config) resolveJWT(e *Env) error {
	const maxLeewaySeconds = 1_000_000_000
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
		return fmt.Errorf("STARCITE_AUTH_JWKS_URL: invalid value %q (expected an http or https URL)", c.JWKSURL)
	}
	leeway := e.nonNegInt("STARCITE_AUTH_JWT_LEEWAY_SECONDS", 1)
	if leeway > maxLeewaySeconds {
		v, _ := e.raw("STARCITE_AUTH_JWT_LEEWAY_SECONDS")
		e.fail("STARCITE_AUTH_JWT_LEEWAY_SECONDS", v, "expected an integer >= 0 and at most 1e9")
	}
	c.JWTLeeway = time.Duration(leeway) * time.Second
	c.JWKSRefresh = e.millis("STARCITE_AUTH_JWKS_REFRESH_MS", 60*time.Second)
	return e.err
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
