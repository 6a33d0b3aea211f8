package dataplane

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// PeerTLS is the mutual TLS of the ports nodes use among themselves — the
// Raft transport and the Ergo distribution (docs/security.md#inter-node-ports).
// One CA signs every node's certificate; each side of a connection
// presents its own and accepts only a peer whose certificate that CA
// signed, and only with TLS 1.2 or later (the default of both libraries).
// It is the one place the TLS material is loaded and checked: the Raft
// transport (OpenRaft), the distribution and the operator tools
// (`starcite ops`, `starcite shell`, through package actors) all take it
// from here.
type PeerTLS struct {
	CAFile, CertFile, KeyFile string // PEM files, as configured

	CAs  *x509.CertPool  // the cluster CA: verifies every peer
	Cert tls.Certificate // this node's certificate and key
}

// LoadPeerTLS reads the CA, certificate and key files and checks that
// they belong together: the key matches the certificate, which the CA
// signed for both server and client use. A node whose files are wrong
// refuses to boot instead of failing every connection later.
func LoadPeerTLS(caFile, certFile, keyFile string) (*PeerTLS, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA %s: no PEM certificate in it", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	for _, use := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{use}}); err != nil {
			return nil, fmt.Errorf("certificate %s is not valid for %s under CA %s: %w", certFile, usageName(use), caFile, err)
		}
	}
	return &PeerTLS{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, CAs: pool, Cert: cert}, nil
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageServerAuth {
		return "server authentication"
	}
	return "client authentication"
}

// CheckHost reports an error unless the certificate names host (a DNS
// name or an IP address): peers dial a node at the host of its name and
// verify that the certificate they get names it.
func (t *PeerTLS) CheckHost(host string) error {
	if err := t.Cert.Leaf.VerifyHostname(host); err != nil {
		return fmt.Errorf("certificate %s does not name this node's host %q (create it with --host %s): %w",
			t.CertFile, host, host, err)
	}
	return nil
}

// legacyDeploymentID is the Raft deployment id of data directories
// created before it was derived from the cluster secret.
const legacyDeploymentID = 0x53544331 // "STC1"

// deploymentID derives the Raft deployment id from the cluster secret (the
// distribution cookie). Dragonboat drops every message whose deployment id
// differs from its own, so a Raft port reached without the secret accepts
// nothing even where TLS is off; it is no substitute for TLS, whose
// absence leaves the id readable on the wire.
func deploymentID(secret string) uint64 {
	sum := sha256.Sum256([]byte("starcite raft deployment id\x00" + secret))
	id := binary.BigEndian.Uint64(sum[:8])
	if id == 0 || id == legacyDeploymentID {
		id = ^id // 0 means "unmanaged" to Dragonboat; the legacy id is taken
	}
	return id
}

// errOtherSecret: the data directory belongs to a deployment with another
// cluster secret.
var errOtherSecret = errors.New("the Raft data was created with another STARCITE_COOKIE " +
	"(the Raft deployment id derives from it); start the node with the cookie its cluster was created with")
