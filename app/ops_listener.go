package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"starcite/app/config"
	"starcite/edge"
)

// startOps runs the ops listener on STARCITE_OPS_HOST:STARCITE_OPS_PORT
// when a port is set (docs/operations.md#ops-listener): health, metrics
// and, on loopback or when allowed, Go's profiler. The returned function
// stops it.
func startOps(cfg config.Config, api *edge.Server, log *slog.Logger) (func(), error) {
	if cfg.OpsPort == 0 {
		return func() {}, nil
	}
	addr := net.JoinHostPort(cfg.OpsHost, strconv.Itoa(cfg.OpsPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("STARCITE_OPS_PORT: listen on %s: %w", addr, err)
	}
	srv := api.OpsServer(cfg.OpsPprof, cfg.PprofTimeout)
	go func() {
		if err := srv.Serve(ln); err != nil {
			log.Error("ops listener failed", "addr", addr, "err", err)
		}
	}()
	if cfg.OpsPprof {
		log.Info("ops listener: health, metrics and pprof", "addr", ln.Addr().String())
	} else {
		log.Info("ops listener: health and metrics; pprof is off because the address is not loopback "+
			"(STARCITE_PPROF_ALLOW_REMOTE=1 serves it there)", "addr", ln.Addr().String())
	}
	return func() {
		// A profile in progress may hold a connection: do not wait for it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.ShutdownWithContext(ctx)
	}, nil
}
