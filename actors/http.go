package actors

import (
	"context"
	"fmt"
	"net"
	"time"

	"ergo.services/ergo/act"
	"ergo.services/ergo/gen"
	"github.com/valyala/fasthttp"
)

// HTTP owns the edge's listener: it binds in Init (so a busy port fails
// the boot with a clear error), serves from a meta process, and shuts the
// server down gracefully when the edge supervisor stops it.
type HTTP struct {
	act.Actor
	server *fasthttp.Server
	addr   string
	ln     net.Listener
}

// NewHTTP returns the factory of the http actor serving s on addr.
func NewHTTP(s *fasthttp.Server, addr string) gen.ProcessFactory {
	return func() gen.ProcessBehavior { return &HTTP{server: s, addr: addr} }
}

func (a *HTTP) Init(args ...any) error {
	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		return fmt.Errorf("http listen on %s: %w", a.addr, err)
	}
	a.ln = ln
	if _, err := a.SpawnMeta(&serveMeta{server: a.server, ln: ln}, gen.MetaOptions{}); err != nil {
		ln.Close()
		return fmt.Errorf("http serve: %w", err)
	}
	a.Log().Info("HTTP listening on %s", ln.Addr())
	return nil
}

func (a *HTTP) Terminate(reason error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.server.ShutdownWithContext(ctx); err != nil {
		a.Log().Warning("HTTP shutdown: %s", err)
	}
}

func (a *HTTP) HandleInspect(from gen.PID, item ...string) map[string]string {
	return map[string]string{"listen": a.ln.Addr().String(),
		"open_connections": fmt.Sprint(a.server.GetOpenConnectionsCount())}
}

// serveMeta runs the blocking Serve loop outside any actor's mailbox.
type serveMeta struct {
	gen.MetaProcess
	server *fasthttp.Server
	ln     net.Listener
}

func (m *serveMeta) Init(p gen.MetaProcess) error { m.MetaProcess = p; return nil }
func (m *serveMeta) Start() error                 { return m.server.Serve(m.ln) }
func (m *serveMeta) HandleMessage(gen.PID, any) error {
	return nil
}
func (m *serveMeta) HandleCall(gen.PID, gen.Ref, any) (any, error)      { return nil, nil }
func (m *serveMeta) Terminate(error)                                    { m.ln.Close() }
func (m *serveMeta) HandleInspect(gen.PID, ...string) map[string]string { return nil }
