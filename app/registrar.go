package main

import "ergo.services/ergo/gen"

// staticRegistrar replaces Ergo's built-in registrar, which binds a
// host-wide port (4499) shared by every node on the machine. Starcite
// knows its peers from configuration and reaches them through static
// routes (host of the node name, STARCITE_DIST_PORT), so registration and
// resolution are no-ops: an unknown peer is simply unroutable.
type staticRegistrar struct{}

func (staticRegistrar) Register(gen.NodeRegistrar, gen.RegisterRoutes) (gen.StaticRoutes, error) {
	return gen.StaticRoutes{}, nil
}
func (r staticRegistrar) Resolver() gen.Resolver                        { return r }
func (staticRegistrar) Resolve(gen.Atom) ([]gen.Route, error)           { return nil, gen.ErrNoRoute }
func (staticRegistrar) ResolveProxy(gen.Atom) ([]gen.ProxyRoute, error) { return nil, gen.ErrNoRoute }
func (staticRegistrar) ResolveApplication(gen.Atom) ([]gen.ApplicationRoute, error) {
	return nil, gen.ErrUnsupported
}
func (staticRegistrar) RegisterProxy(gen.Atom) error   { return gen.ErrUnsupported }
func (staticRegistrar) UnregisterProxy(gen.Atom) error { return gen.ErrUnsupported }
func (staticRegistrar) RegisterApplicationRoute(gen.ApplicationRoute) error {
	return gen.ErrUnsupported
}
func (staticRegistrar) UnregisterApplicationRoute(gen.Atom) error { return gen.ErrUnsupported }
func (staticRegistrar) Nodes() ([]gen.Atom, error)                { return nil, gen.ErrUnsupported }
func (staticRegistrar) Config(...string) (map[string]any, error)  { return nil, gen.ErrUnsupported }
func (staticRegistrar) ConfigItem(string) (any, error)            { return nil, gen.ErrUnsupported }
func (staticRegistrar) Event() (gen.Event, error)                 { return gen.Event{}, gen.ErrUnsupported }
func (staticRegistrar) Info() gen.RegistrarInfo                   { return gen.RegistrarInfo{Server: "static"} }
func (staticRegistrar) Terminate()                                {}
func (staticRegistrar) Version() gen.Version {
	return gen.Version{Name: "starcite static routes", Release: "1"}
}
