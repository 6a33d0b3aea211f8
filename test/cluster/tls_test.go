package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"starcite/test/harness"
)

// TestInterNodeTLSRefusesStrangers: on both inter-node ports (Raft and
// distribution) of a cluster with the mutual TLS of docs/security.md, a
// client without a certificate and one whose certificate another CA
// signed are refused during the TLS handshake, and so is one that does
// not speak TLS; a certificate of the cluster's CA is accepted, and the
// cluster still serves afterwards.
func TestInterNodeTLSRefusesStrangers(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{Subnet: subnet})
	n := c.Nodes[0]
	if !strings.Contains(n.Log(), "inter-node ports use mutual TLS") {
		t.Fatal("the cluster does not run with TLS")
	}
	own := loadClient(t, c.Nodes[1].Env)
	other := loadClient(t, harness.MakeCerts(t, t.TempDir(), []string{c.Nodes[1].Host})[0])
	ownCAs := own.RootCAs

	for _, port := range []string{"STARCITE_RAFT_PORT", "STARCITE_DIST_PORT"} {
		addr := net.JoinHostPort(n.Host, n.Env[port])
		t.Run(port, func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				config *tls.Config // nil: plain TCP
				accept bool
			}{
				{"certificate of the cluster CA", own, true},
				{"no certificate", &tls.Config{RootCAs: ownCAs, ServerName: n.Host}, false},
				{"certificate of another CA", &tls.Config{RootCAs: ownCAs, ServerName: n.Host, Certificates: other.Certificates}, false},
				{"plain TCP", nil, false},
			} {
				err := probe(addr, tc.config)
				t.Logf("%s: %v", tc.name, err)
				switch {
				case tc.accept && err != nil:
					t.Errorf("%s: refused: %v", tc.name, err)
				case !tc.accept && err == nil:
					t.Errorf("%s: accepted", tc.name)
				}
			}
		})
	}

	// The refused attempts left the cluster working, across nodes.
	n.CreateSession("after-probes", nil)
	if st, _, body, err := c.Nodes[2].Append("after-probes", "w", 1, map[string]any{"ok": true}); err != nil || st != 201 {
		t.Fatalf("append after the probes: %d %s %v", st, body, err)
	}
}

// loadClient is a TLS client configuration from a node's TLS variables.
func loadClient(t *testing.T, env map[string]string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(env["STARCITE_CLUSTER_TLS_CERT"], env["STARCITE_CLUSTER_TLS_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(env["STARCITE_CLUSTER_TLS_CA"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}
}

// probe connects to addr and reports whether the server accepted the
// connection: with TLS, the handshake completes and no alert follows (the
// server verifies the client's certificate after the client's side of a
// TLS 1.3 handshake is done, so a refusal shows up on the first read);
// without TLS, bytes that are no TLS record get the connection closed or
// an alert, never an answer.
func probe(addr string, config *tls.Config) error {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	if config == nil {
		// Something a plaintext peer of either protocol would send first.
		if _, err := raw.Write([]byte("\x00\x00\x00\x10starcite-probe-xx")); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, err := raw.Read(buf)
		if err != nil {
			return err
		}
		if n > 0 && buf[0] == 0x15 { // a TLS alert record
			return errors.New("TLS alert to a plaintext client")
		}
		return nil
	}
	host, _, _ := net.SplitHostPort(addr)
	cfg := config.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	conn := tls.Client(raw, cfg)
	if err := conn.Handshake(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	// The server now either sends an alert about our certificate or
	// waits for our first message (the distribution gives up after 1 s
	// and closes, the Raft port keeps waiting).
	conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case err == nil, errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	case strings.Contains(err.Error(), "remote error"):
		return err
	}
	return nil // closed after the handshake, without an alert: accepted, then idle
}
