package actors

import (
	"context"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"
)

// DiscoveryName is the registered name of the discovery actor.
const DiscoveryName gen.Atom = "discovery"

// DiscoveryConfig says where the peers are.
type DiscoveryConfig struct {
	Self     string
	Peers    []string // CLUSTER_NODES and the write nodes
	DistPort int      // every node's distribution port
	DNSQuery string   // DNS_CLUSTER_QUERY; "" = static peers only
	DNSEvery time.Duration
	Basename string // DNS_CLUSTER_NODE_BASENAME: peers are <basename>@<ip>
	// TLS, when set, is the distribution's mutual TLS (DistributionTLS).
	TLS gen.CertAuthManager
}

type dnsTick struct{}

// Discovery makes peers reachable over Ergo distribution: a static route
// (the host of the node name, STARCITE_DIST_PORT) for every configured
// peer, and for every address DNS_CLUSTER_QUERY resolves to, polled.
// Ergo's own registrar is not used (it binds a host-wide port).
type Discovery struct {
	act.Actor
	cfg   DiscoveryConfig
	known map[string]bool
}

// NewDiscovery returns the factory of the discovery actor.
func NewDiscovery(cfg DiscoveryConfig) gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &Discovery{cfg: cfg} }
}

func (d *Discovery) Init(args ...any) error {
	d.known = map[string]bool{}
	for _, p := range d.cfg.Peers {
		if err := d.route(p); err != nil {
			return err
		}
	}
	if d.cfg.DNSQuery != "" {
		return d.Send(d.PID(), dnsTick{})
	}
	return nil
}

// route adds the static route to a peer once.
func (d *Discovery) route(peer string) error {
	if peer == d.cfg.Self || d.known[peer] {
		return nil
	}
	_, host, _ := strings.Cut(peer, "@")
	if err := AddPeerRoute(d.Node().Network(), peer, host, d.cfg.DistPort, d.cfg.TLS); err != nil {
		return err
	}
	d.known[peer] = true
	return nil
}

func (d *Discovery) HandleMessage(from gen.PID, message any) error {
	if _, ok := message.(dnsTick); ok {
		defer d.SendAfter(d.PID(), dnsTick{}, d.cfg.DNSEvery)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(ctx, d.cfg.DNSQuery)
		cancel()
		if err != nil {
			d.Log().Warning("DNS discovery %s: %s", d.cfg.DNSQuery, err)
			return nil
		}
		for _, a := range addrs {
			peer := d.cfg.Basename + "@" + a
			if !d.known[peer] && peer != d.cfg.Self {
				if err := d.route(peer); err == nil {
					d.Log().Info("discovered %s", peer)
				}
			}
		}
	}
	return nil
}

func (d *Discovery) HandleInspect(from gen.PID, item ...string) map[string]string {
	peers := make([]string, 0, len(d.known))
	for p := range d.known {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	return map[string]string{"peers": strings.Join(peers, ","), "dist_port": strconv.Itoa(d.cfg.DistPort),
		"dns_query": d.cfg.DNSQuery}
}
