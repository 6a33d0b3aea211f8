package actors

import (
	"crypto/tls"
	"regexp"

	"ergo.services/ergo/gen"

	"starcite/dataplane"
)

// DistributionTLS makes the Ergo distribution mutual TLS with the node's
// certificate (docs/security.md#inter-node-ports): the acceptor requires a
// client certificate the cluster CA signed, and a dialling node verifies
// that the peer's certificate comes from that CA and names the host it
// dialled. The operator tools present the same certificate as a client.
func DistributionTLS(t *dataplane.PeerTLS) gen.CertAuthManager {
	cm := gen.CreateCertAuthManager(t.Cert)
	cm.SetClientCAs(t.CAs)
	cm.SetRootCAs(t.CAs)
	cm.SetClientAuth(tls.RequireAndVerifyClientCert)
	return cm
}

// AddPeerRoute makes node reachable at host:port, over TLS when tlsCerts
// is set (DistributionTLS), as a static route: Starcite knows its peers
// from configuration and uses no registrar.
func AddPeerRoute(n gen.Network, node, host string, port int, tlsCerts gen.CertAuthManager) error {
	route := gen.NetworkRoute{Route: gen.Route{Host: host, Port: uint16(port)}}
	if tlsCerts != nil {
		route.Route.TLS, route.Cert = true, tlsCerts
	}
	return n.AddRoute("^"+regexp.QuoteMeta(node)+"$", route, 100)
}
