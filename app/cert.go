package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// `starcite cert` makes the certificates of the inter-node mutual TLS
// (docs/security.md#certificates) with Go's crypto/x509: a CA, and per node
// a certificate the CA signs for both server and client use, naming the
// hosts peers dial it at. No openssl needed.

const certUsage = `usage:
  starcite cert ca [--dir DIR] [--days N] [--force]
  starcite cert node NAME --host HOST [--host HOST ...] [--dir DIR] [--days N] [--force]

ca    writes DIR/ca.pem and DIR/ca-key.pem: a new cluster CA (ECDSA P-256,
      default 3650 days)
node  writes DIR/NAME.pem and DIR/NAME-key.pem: a node certificate signed by
      DIR/ca.pem and DIR/ca-key.pem (default 825 days), valid for server and
      client authentication and naming every HOST (the host of the node's
      NODE_NAME, as an IP address or a DNS name; repeat --host for more)

DIR defaults to ./certs. Existing files are kept unless --force. Keys are
written with mode 0600. A node runs with
  STARCITE_CLUSTER_TLS_CA=DIR/ca.pem STARCITE_CLUSTER_TLS_CERT=DIR/NAME.pem
  STARCITE_CLUSTER_TLS_KEY=DIR/NAME-key.pem

exit status: 0 written, 1 failed, 2 usage error`

// certNamePattern keeps a node's name usable as a file name.
var certNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }
func (h *hostList) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "" || strings.ContainsAny(v, " /,") {
		return fmt.Errorf("invalid host %q", v)
	}
	*h = append(*h, v)
	return nil
}

func certMain(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, certUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	fs := flag.NewFlagSet("cert", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "certs", "output directory")
	days := fs.Int("days", 0, "validity in days")
	force := fs.Bool("force", false, "overwrite existing files")
	var hosts hostList
	fs.Var(&hosts, "host", "host the node is dialled at (repeatable)")

	kind, rest := args[0], args[1:]
	var name string
	if kind == "node" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "starcite cert: "+format+"\n\n%s\n", append(a, certUsage)...)
		return exitUsage
	}
	if err := fs.Parse(rest); err != nil {
		return usageErr("%v", err)
	}
	if kind == "node" && name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return usageErr("%v", err)
		}
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *days < 0 {
		return usageErr("--days must be positive")
	}
	var written []string
	var err error
	switch kind {
	case "ca":
		if len(hosts) > 0 {
			return usageErr("--host is for node certificates")
		}
		written, err = writeCA(*dir, validity(*days, 3650), *force)
	case "node":
		switch {
		case !certNamePattern.MatchString(name):
			return usageErr("node NAME must be letters, digits, '.', '_' or '-' (got %q)", name)
		case len(hosts) == 0:
			return usageErr("node %s: at least one --host", name)
		}
		written, err = writeNodeCert(*dir, name, hosts, validity(*days, 825), *force)
	default:
		return usageErr("unknown kind %q (expected ca or node)", kind)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starcite cert:", err)
		return exitFailed
	}
	for _, p := range written {
		fmt.Println("wrote", p)
	}
	return exitOK
}

func validity(days, def int) time.Duration {
	if days == 0 {
		days = def
	}
	return time.Duration(days) * 24 * time.Hour
}

// writeCA creates a self-signed CA that may sign node certificates only
// (path length 0).
func writeCA(dir string, valid time.Duration, force bool) ([]string, error) {
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := checkWritable(force, certPath, keyPath); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := certTemplate("starcite cluster CA", valid)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	return writePair(dir, certPath, der, keyPath, key)
}

// writeNodeCert creates a node certificate for hosts, signed by the CA in
// dir.
func writeNodeCert(dir, name string, hosts []string, valid time.Duration, force bool) ([]string, error) {
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if name == "ca" {
		return nil, errors.New(`node NAME "ca" would overwrite the CA`)
	}
	if err := checkWritable(force, certPath, keyPath); err != nil {
		return nil, err
	}
	ca, caKey, err := readCA(dir)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := certTemplate(name, valid)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter // a certificate cannot outlive its CA
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create node certificate: %w", err)
	}
	return writePair(dir, certPath, der, keyPath, key)
}

func certTemplate(cn string, valid time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"starcite"}},
		NotBefore:    now.Add(-5 * time.Minute), // tolerate a little clock skew between machines
		NotAfter:     now.Add(valid),
	}, nil
}

func readCA(dir string) (*x509.Certificate, any, error) {
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read the CA (create it with `starcite cert ca --dir %s`): %w", dir, err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: no PEM certificate", certPath)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read the CA key: %w", err)
	}
	block, _ = pem.Decode(keyPEM)
	if block == nil {
		return nil, nil, fmt.Errorf("%s: no PEM key", keyPath)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	return ca, key, nil
}

// checkWritable refuses to replace existing files unless forced: a new
// CA would silently cut every node off from the others.
func checkWritable(force bool, paths ...string) error {
	if force {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists (use --force to replace it)", p)
		}
	}
	return nil
}

func writePair(dir, certPath string, der []byte, keyPath string, key *ecdsa.PrivateKey) ([]string, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return []string{certPath, keyPath}, nil
}

// writeFile replaces path atomically with data and mode.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
