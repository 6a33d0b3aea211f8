package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"starcite/app/config"
)

// startPprof serves Go's profiler (net/http/pprof) on
// STARCITE_PPROF_HOST:STARCITE_PPROF_PORT when the port is set
// (docs/decisions.md#d16). It binds loopback unless told otherwise:
// profiles and the command line reveal the node's internals, and a CPU
// profile costs CPU. STARCITE_PPROF_TIMEOUT_MS is the write timeout, so it
// also bounds how long a profile may run. The returned function stops it.
func startPprof(cfg config.Config, log *slog.Logger) (func(), error) {
	if cfg.PprofPort == 0 {
		return func() {}, nil
	}
	addr := net.JoinHostPort(cfg.PprofHost, strconv.Itoa(cfg.PprofPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("STARCITE_PPROF_PORT: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: cfg.PprofTimeout}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof listener failed", "addr", addr, "err", err)
		}
	}()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
