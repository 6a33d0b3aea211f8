package config

import (
	"strings"
	"testing"
	"time"
)

// load runs Load over exactly the variables of env.
func load(env map[string]string) (Config, error) {
	return Load(NewEnv(func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}))
}

// merged is base with over applied; an empty value in over removes the
// variable.
func merged(base, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// noneMode is the smallest valid configuration: none mode on loopback.
var noneMode = map[string]string{"STARCITE_AUTH_MODE": "none"}

// jwtMode is a complete jwt-mode configuration.
var jwtMode = map[string]string{
	"STARCITE_AUTH_MODE":         "jwt",
	"STARCITE_AUTH_JWT_ISSUER":   "https://issuer.test",
	"STARCITE_AUTH_JWT_AUDIENCE": "starcite-api",
	"STARCITE_AUTH_JWKS_URL":     "http://127.0.0.1:1/jwks",
}

// TestLoadRefusesBadValues: a bad value or a missing dependency is one
// line naming the variable (boot prints it and exits 2).
func TestLoadRefusesBadValues(t *testing.T) {
	tests := []struct {
		name string
		base map[string]string
		env  map[string]string
		want string
	}{
		{"port not a number", noneMode, map[string]string{"PORT": "http"}, `PORT: invalid value "http" (expected a positive integer)`},
		{"port out of range", noneMode, map[string]string{"PORT": "70000"}, `PORT: invalid value "70000" (expected a port number 1..65535)`},
		{"zero groups", noneMode, map[string]string{"STARCITE_NUM_GROUPS": "0"}, `STARCITE_NUM_GROUPS: invalid value "0"`},
		{"negative connection cap", noneMode, map[string]string{"STARCITE_MAX_CONNECTIONS": "-1"}, `STARCITE_MAX_CONNECTIONS: invalid value "-1" (expected an integer >= 0)`},
		{"zero rtt", noneMode, map[string]string{"STARCITE_RAFT_RTT_MS": "0"}, "STARCITE_RAFT_RTT_MS: invalid value"},
		{"unknown auth mode", noneMode, map[string]string{"STARCITE_AUTH_MODE": "open"}, `STARCITE_AUTH_MODE: invalid value "open" (expected jwt or none)`},
		{"size without digits", noneMode, map[string]string{"STARCITE_PENDING_MAX_SIZE": "G"}, "STARCITE_PENDING_MAX_SIZE: invalid value"},
		{"zero size", noneMode, map[string]string{"STARCITE_PENDING_MAX_SIZE": "0"}, "STARCITE_PENDING_MAX_SIZE: invalid value"},
		{"bad size unit", noneMode, map[string]string{"STARCITE_PENDING_MAX_SIZE": "12XB"}, "STARCITE_PENDING_MAX_SIZE: invalid value"},
		{"size overflow", noneMode, map[string]string{"STARCITE_ARCHIVE_READ_CACHE_MAX_SIZE": "9999999999T"}, "STARCITE_ARCHIVE_READ_CACHE_MAX_SIZE: invalid value"},
		{"bad boolean", noneMode, map[string]string{"STARCITE_ALLOW_INSECURE_NONE": "maybe"}, "STARCITE_ALLOW_INSECURE_NONE: invalid value"},
		{"node name without host", noneMode, map[string]string{"NODE_NAME": "starcite"}, "NODE_NAME: invalid value"},
		{"node name with a comma", noneMode, map[string]string{"NODE_NAME": "a@h,b@h"}, "NODE_NAME: invalid value"},
		{"replication factor above write nodes", noneMode, map[string]string{"STARCITE_WRITE_REPLICATION_FACTOR": "2"}, "STARCITE_WRITE_REPLICATION_FACTOR: 2 exceeds the 1 write node(s)"},
		{"cluster without cookie", noneMode, map[string]string{"STARCITE_WRITE_NODE_IDS": "a@127.0.0.1,b@127.0.0.2"}, "STARCITE_COOKIE: required"},
		{"cluster without write nodes", noneMode, map[string]string{"CLUSTER_NODES": "a@127.0.0.1,b@127.0.0.2"}, "STARCITE_WRITE_NODE_IDS: required when CLUSTER_NODES"},
		{"dns cluster without write nodes", noneMode, map[string]string{"DNS_CLUSTER_QUERY": "starcite.internal"}, "STARCITE_WRITE_NODE_IDS: required when CLUSTER_NODES or DNS_CLUSTER_QUERY"},
		{"cluster node without host", noneMode, map[string]string{"CLUSTER_NODES": "a@127.0.0.1,b", "STARCITE_WRITE_NODE_IDS": "a@127.0.0.1", "STARCITE_COOKIE": "c"}, `CLUSTER_NODES: invalid node "b"`},
		{"write node without host", noneMode, map[string]string{"STARCITE_WRITE_NODE_IDS": "a@", "STARCITE_COOKIE": "c"}, `STARCITE_WRITE_NODE_IDS: invalid node "a@"`},
		{"none mode on a public address", noneMode, map[string]string{"STARCITE_HTTP_HOST": "0.0.0.0"}, `STARCITE_HTTP_HOST: "0.0.0.0" is not a loopback address`},
		{"log level", noneMode, map[string]string{"STARCITE_LOG_LEVEL": "loud"}, "STARCITE_LOG_LEVEL: invalid value"},
		{"log format", noneMode, map[string]string{"STARCITE_LOG_FORMAT": "xml"}, "STARCITE_LOG_FORMAT: invalid value"},
		{"jwt is the default mode and needs an issuer", noneMode, map[string]string{"STARCITE_AUTH_MODE": ""}, "STARCITE_AUTH_JWT_ISSUER: required when STARCITE_AUTH_MODE=jwt"},
		{"jwt mode any case", jwtMode, map[string]string{"STARCITE_AUTH_MODE": "JWT", "STARCITE_AUTH_JWT_ISSUER": ""}, "STARCITE_AUTH_JWT_ISSUER: required"},
		{"jwt with a blank issuer", jwtMode, map[string]string{"STARCITE_AUTH_JWT_ISSUER": "  "}, "STARCITE_AUTH_JWT_ISSUER: required"},
		{"jwt without audience", jwtMode, map[string]string{"STARCITE_AUTH_JWT_AUDIENCE": ""}, "STARCITE_AUTH_JWT_AUDIENCE: required"},
		{"jwt without JWKS URL", jwtMode, map[string]string{"STARCITE_AUTH_JWKS_URL": ""}, "STARCITE_AUTH_JWKS_URL: required"},
		{"JWKS URL not http", jwtMode, map[string]string{"STARCITE_AUTH_JWKS_URL": "ftp://keys.test/jwks"}, "STARCITE_AUTH_JWKS_URL: invalid value"},
		{"JWKS URL without host", jwtMode, map[string]string{"STARCITE_AUTH_JWKS_URL": "https:///jwks"}, "STARCITE_AUTH_JWKS_URL: invalid value"},
		{"negative leeway", jwtMode, map[string]string{"STARCITE_AUTH_JWT_LEEWAY_SECONDS": "-1"}, "STARCITE_AUTH_JWT_LEEWAY_SECONDS: invalid value"},
		{"fractional leeway", jwtMode, map[string]string{"STARCITE_AUTH_JWT_LEEWAY_SECONDS": "1.5"}, "STARCITE_AUTH_JWT_LEEWAY_SECONDS: invalid value"},
		{"huge leeway", jwtMode, map[string]string{"STARCITE_AUTH_JWT_LEEWAY_SECONDS": "1000000001"}, "STARCITE_AUTH_JWT_LEEWAY_SECONDS: invalid value"},
		{"leeway one second over 300", jwtMode, map[string]string{"STARCITE_AUTH_JWT_LEEWAY_SECONDS": "301"},
			`STARCITE_AUTH_JWT_LEEWAY_SECONDS: invalid value "301" (expected an integer from 0 to 300)`},
		{"zero JWKS hard expiry", jwtMode, map[string]string{"STARCITE_AUTH_JWKS_HARD_EXPIRY_MS": "0"}, "STARCITE_AUTH_JWKS_HARD_EXPIRY_MS: invalid value"},
		{"JWKS URL echoed without credentials", jwtMode, map[string]string{"STARCITE_AUTH_JWKS_URL": "ftp://user:pw@idp.example/jwks?key=k"},
			`STARCITE_AUTH_JWKS_URL: invalid value "ftp://redacted@idp.example/jwks?redacted"`},
		{"cluster cookie one byte short", noneMode, cluster("127.0.0.1", strings.Repeat("c", 15)),
			"STARCITE_COOKIE: 15 bytes is too short for a cluster (at least 16"},
		{"cluster off loopback without TLS", noneMode, cluster("10.0.0.5", strings.Repeat("c", 16)),
			"STARCITE_CLUSTER_TLS_CA, STARCITE_CLUSTER_TLS_CERT, STARCITE_CLUSTER_TLS_KEY: required for a cluster node on a non-loopback address (10.0.0.5), or set STARCITE_CLUSTER_INSECURE=1"},
		{"cluster hostname without TLS", noneMode, cluster("node1", strings.Repeat("c", 16)), "non-loopback address (node1)"},
		{"some TLS variables", noneMode, merged(cluster("127.0.0.1", strings.Repeat("c", 16)), map[string]string{"STARCITE_CLUSTER_TLS_CA": "ca.pem"}),
			"STARCITE_CLUSTER_TLS_CA, STARCITE_CLUSTER_TLS_CERT, STARCITE_CLUSTER_TLS_KEY: set all three or none"},
		{"bad insecure flag", noneMode, merged(cluster("10.0.0.5", strings.Repeat("c", 16)), map[string]string{"STARCITE_CLUSTER_INSECURE": "perhaps"}),
			"STARCITE_CLUSTER_INSECURE: invalid value"},
		{"pprof on a public address", noneMode, map[string]string{"STARCITE_PPROF_PORT": "6060", "STARCITE_PPROF_HOST": "0.0.0.0"},
			`STARCITE_PPROF_HOST: "0.0.0.0" is not a loopback address`},
		{"ops port is PORT", noneMode, map[string]string{"STARCITE_OPS_PORT": "4000"}, "STARCITE_OPS_PORT: 4000 is also PORT"},
		{"bad ops port", noneMode, map[string]string{"STARCITE_OPS_PORT": "http"}, "STARCITE_OPS_PORT: invalid value"},
		{"zero JWKS refresh", jwtMode, map[string]string{"STARCITE_AUTH_JWKS_REFRESH_MS": "0"}, "STARCITE_AUTH_JWKS_REFRESH_MS: invalid value"},
		{"JWKS refresh not a number", jwtMode, map[string]string{"STARCITE_AUTH_JWKS_REFRESH_MS": "1m"}, "STARCITE_AUTH_JWKS_REFRESH_MS: invalid value"},
		{"unknown archive adapter", noneMode, map[string]string{"STARCITE_ARCHIVE_ADAPTER": "tape"}, `STARCITE_ARCHIVE_ADAPTER: invalid value "tape"`},
		{"s3 without bucket", noneMode, map[string]string{"STARCITE_ARCHIVE_ADAPTER": "s3"}, "STARCITE_S3_BUCKET: required"},
		{"s3 endpoint with a path", noneMode, map[string]string{"STARCITE_ARCHIVE_ADAPTER": "s3", "STARCITE_S3_BUCKET": "b", "STARCITE_S3_ENDPOINT": "http://s3.test/x"}, "STARCITE_S3_ENDPOINT: invalid value"},
		{"s3 key without secret", noneMode, map[string]string{"STARCITE_ARCHIVE_ADAPTER": "s3", "STARCITE_S3_BUCKET": "b", "STARCITE_S3_ACCESS_KEY_ID": "k"}, "STARCITE_S3_ACCESS_KEY_ID: set together with STARCITE_S3_SECRET_ACCESS_KEY"},
		{"postgres without URL", noneMode, map[string]string{"STARCITE_ARCHIVE_ADAPTER": "postgres"}, "DATABASE_URL: required"},
		{"postgres URL of another scheme", noneMode, map[string]string{"STARCITE_ARCHIVE_ADAPTER": "postgres", "DATABASE_URL": "mysql://u:p@h/db"}, "DATABASE_URL: invalid value"},
		{"file archive of a cluster without a directory", noneMode, map[string]string{"STARCITE_COOKIE": "a-cluster-cookie-0123",
			"STARCITE_WRITE_NODE_IDS": "starcite@127.0.0.1,s@127.0.0.2,s@127.0.0.3"},
			"STARCITE_ARCHIVE_DIR: required in a cluster with STARCITE_ARCHIVE_ADAPTER=file; it must be one directory shared by every node (or use STARCITE_ARCHIVE_ADAPTER=s3 or postgres)"},
		{"file archive of a router node without a directory", noneMode, map[string]string{
			"STARCITE_WRITE_NODE_IDS": "s@127.0.0.2", "CLUSTER_NODES": "s@127.0.0.2", "STARCITE_COOKIE": "a-cluster-cookie-0123"}, "STARCITE_ARCHIVE_DIR: required in a cluster"},
		{"postgres pool", noneMode, map[string]string{"STARCITE_ARCHIVE_ADAPTER": "postgres", "DATABASE_URL": "postgres://h/db", "DB_POOL_SIZE": "0"}, "DB_POOL_SIZE: invalid value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(merged(tc.base, tc.env))
			if err == nil {
				t.Fatalf("loaded; want an error containing %q", tc.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q; want one line containing %q", msg, tc.want)
			}
		})
	}
}

// cluster is node a of a two-write-node cluster at host with cookie
// (and the shared archive directory a cluster needs).
func cluster(host, cookie string) map[string]string {
	return map[string]string{"NODE_NAME": "a@" + host, "STARCITE_WRITE_NODE_IDS": "a@" + host + ",b@192.0.2.200",
		"STARCITE_COOKIE": cookie, "STARCITE_ARCHIVE_DIR": "/mnt/archive"}
}

// TestSecurityBoundsAccepted: each bound of docs/security.md that
// TestLoadRefusesBadValues refuses one step past is accepted at the bound.
func TestSecurityBoundsAccepted(t *testing.T) {
	for _, tt := range []struct {
		name  string
		env   map[string]string
		check func(c Config) bool
	}{
		{"cluster cookie of 16 bytes", merged(noneMode, cluster("127.0.0.1", strings.Repeat("c", 16))),
			func(c Config) bool { return c.Clustered() && c.ClusterTLS == nil }},
		{"single node with a short cookie", merged(noneMode, map[string]string{"STARCITE_COOKIE": "short"}),
			func(c Config) bool { return !c.Clustered() }},
		{"cluster off loopback, insecure", merged(noneMode, merged(cluster("10.0.0.5", strings.Repeat("c", 16)),
			map[string]string{"STARCITE_CLUSTER_INSECURE": "1", "STARCITE_ALLOW_INSECURE_NONE": "1"})),
			func(c Config) bool { return c.ClusterInsecure }},
		{"leeway of 300 s", merged(jwtMode, map[string]string{"STARCITE_AUTH_JWT_LEEWAY_SECONDS": "300"}),
			func(c Config) bool { return c.JWTLeeway == 300*time.Second }},
		{"hard expiry defaults to the refresh", merged(jwtMode, map[string]string{"STARCITE_AUTH_JWKS_REFRESH_MS": "30000"}),
			func(c Config) bool { return c.JWKSHardExpiry == 30*time.Second && c.JWKSRefresh == 30*time.Second }},
		{"hard expiry of its own", merged(jwtMode, map[string]string{"STARCITE_AUTH_JWKS_HARD_EXPIRY_MS": "600000"}),
			func(c Config) bool { return c.JWKSHardExpiry == 10*time.Minute && c.JWKSRefresh == time.Minute }},
		{"pprof port of earlier versions: the ops listener on the API host", merged(noneMode, map[string]string{"STARCITE_PPROF_PORT": "6060"}),
			func(c Config) bool { return c.OpsPort == 6060 && c.OpsHost == "127.0.0.1" && c.OpsPprof }},
		{"pprof on a public address, allowed", merged(noneMode, map[string]string{"STARCITE_PPROF_PORT": "6060",
			"STARCITE_PPROF_HOST": "0.0.0.0", "STARCITE_PPROF_ALLOW_REMOTE": "1"}),
			func(c Config) bool { return c.PprofAllowRemote && c.OpsHost == "0.0.0.0" && c.OpsPprof }},
		{"ops port wins over the pprof port", merged(noneMode, map[string]string{"STARCITE_OPS_PORT": "9090", "STARCITE_PPROF_PORT": "6060"}),
			func(c Config) bool { return c.OpsPort == 9090 }},
		{"ops listener on the API host of jwt mode: no pprof there", merged(jwtMode, map[string]string{"STARCITE_OPS_PORT": "9090"}),
			func(c Config) bool { return c.OpsHost == "0.0.0.0" && !c.OpsPprof }},
		{"ops host of its own", merged(jwtMode, map[string]string{"STARCITE_OPS_PORT": "9090", "STARCITE_OPS_HOST": "127.0.0.1"}),
			func(c Config) bool { return c.OpsHost == "127.0.0.1" && c.OpsPprof }},
	} {
		c, err := load(tt.env)
		if err != nil || !tt.check(c) {
			t.Errorf("%s: %v %+v", tt.name, err, c)
		}
	}
}

// TestPostgresURLNeverInTheError: the error about a bad DATABASE_URL does
// not repeat it (it may hold a password).
func TestPostgresURLNeverInTheError(t *testing.T) {
	_, err := load(merged(noneMode, map[string]string{"STARCITE_ARCHIVE_ADAPTER": "postgres", "DATABASE_URL": "mysql://u:s3cret@h/db"}))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v", err)
	}
}

// TestLoadDerivesSettings: defaults, and the settings derived from other
// variables.
func TestLoadDerivesSettings(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{"defaults of a single node", noneMode, func(t *testing.T, c Config) {
			if c.NodeName != "starcite@127.0.0.1" || c.Port != 4000 || c.RaftPort != 7100 || c.DistPort != 7200 ||
				c.NumGroups != 256 || c.RF != 1 || len(c.WriteNodes) != 1 || c.WriteNodes[0] != c.NodeName || !c.WriteNode() ||
				c.DataDir != "data" || c.RaftRTT != 100*time.Millisecond || c.MaxConnections != 10_000 || !c.Telemetry ||
				c.PendingMax != 1<<30 || c.LogLevel != "info" || c.LogFormat != "text" || c.OpsPort != 0 {
				t.Errorf("%+v", c)
			}
			if c.HTTPHost != "127.0.0.1" {
				t.Errorf("none mode binds %q, want loopback", c.HTTPHost)
			}
			if a := c.Archive; c.Clustered() || a.Store.Adapter != "file" || a.Store.Dir != "data/archive" || a.FlushEvery != 5*time.Second || a.ReadCacheMax != 2<<30 {
				t.Errorf("archive %+v", a)
			}
		}},
		{"jwt mode binds every address", jwtMode, func(t *testing.T, c Config) {
			if c.AuthMode != "jwt" || c.HTTPHost != "0.0.0.0" || c.JWTLeeway != time.Second || c.JWKSRefresh != time.Minute ||
				c.JWTIssuer != "https://issuer.test" || c.JWKSURL != "http://127.0.0.1:1/jwks" {
				t.Errorf("%+v", c)
			}
		}},
		{"none mode off loopback when forced", merged(noneMode, map[string]string{"STARCITE_ALLOW_INSECURE_NONE": "yes"}), func(t *testing.T, c Config) {
			if c.HTTPHost != "0.0.0.0" {
				t.Errorf("HTTPHost %q", c.HTTPHost)
			}
		}},
		{"values trimmed, units, cases", merged(noneMode, map[string]string{"PORT": " 4100 ", "STARCITE_PENDING_MAX_SIZE": "512 kib",
			"STARCITE_LOG_LEVEL": "DEBUG", "STARCITE_AUTH_MODE": "None", "STARCITE_RAFT_DATA_DIR": "./d/../e/"}), func(t *testing.T, c Config) {
			if c.Port != 4100 || c.PendingMax != 512<<10 || c.LogLevel != "debug" || c.AuthMode != "none" || c.DataDir != "e" {
				t.Errorf("%+v", c)
			}
		}},
		{"cluster: replication factor at most 3, lists deduplicated", merged(noneMode, map[string]string{
			"NODE_NAME": "s@10.0.0.9", "STARCITE_ALLOW_INSECURE_NONE": "1", "STARCITE_COOKIE": "a-cluster-cookie-0123", "STARCITE_CLUSTER_INSECURE": "1",
			"STARCITE_WRITE_NODE_IDS": "s@10.0.0.1, s@10.0.0.2,s@10.0.0.3,,s@10.0.0.4,s@10.0.0.1",
			"CLUSTER_NODES":           "s@10.0.0.1,s@10.0.0.9", "STARCITE_ARCHIVE_DIR": "/mnt/archive/"}), func(t *testing.T, c Config) {
			if c.RF != 3 || len(c.WriteNodes) != 4 || c.WriteNode() || c.NodeHost() != "10.0.0.9" || len(c.ClusterNodes) != 2 ||
				!c.Clustered() || c.Archive.Store.Dir != "/mnt/archive" {
				t.Errorf("%+v", c)
			}
		}},
		{"s3 archive", merged(noneMode, map[string]string{"STARCITE_ARCHIVE_ADAPTER": "S3", "STARCITE_S3_BUCKET": "b",
			"STARCITE_S3_ENDPOINT": "http://127.0.0.1:7070/"}), func(t *testing.T, c Config) {
			s := c.Archive.Store
			if s.Adapter != "s3" || s.S3Bucket != "b" || s.S3Prefix != "starcite" || !s.S3PathStyle || s.S3MaxWriteRetries != 4 {
				t.Errorf("%+v", s)
			}
		}},
		{"postgres archive from either variable", merged(noneMode, map[string]string{"STARCITE_ARCHIVE_ADAPTER": "postgres",
			"STARCITE_POSTGRES_URL": "postgresql://u:p@h/db", "MIGRATE_ON_BOOT": "off"}), func(t *testing.T, c Config) {
			s := c.Archive.Store
			if s.PostgresURL != "postgresql://u:p@h/db" || s.PostgresPoolSize != 10 || s.Migrate {
				t.Errorf("%+v", s)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1 << 20, "1B": 1, "2k": 2 << 10, "2KB": 2 << 10, "2KiB": 2 << 10, "3 m": 3 << 20, "3MiB": 3 << 20,
		"4g": 4 << 30, "4GB": 4 << 30, "1t": 1 << 40, "1TiB": 1 << 40,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "G", "1.5G", "1 PB", "9999999999T", "12XB", "99999999999999999999"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}
