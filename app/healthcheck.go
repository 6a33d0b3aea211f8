package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	// Time zone data inside the binary: the container image is FROM
	// scratch (no /usr/share/zoneinfo), and TZ set by an operator should
	// still name a zone rather than silently fall back to UTC.
	_ "time/tzdata"

	"starcite/app/config"
)

// healthcheckTimeout bounds the whole probe; Docker's HEALTHCHECK
// --timeout should be at least this long.
const healthcheckTimeout = 3 * time.Second

const healthcheckUsage = `usage: starcite healthcheck [ready|live]

Probes the node on this machine over HTTP: GET /health/ready (default) or
/health/live on the ops listener when STARCITE_OPS_PORT (or
STARCITE_PPROF_PORT) is set, else on STARCITE_HTTP_HOST:PORT (a wildcard
or unset host means loopback). Exit code 0 when it answers 200, 1 otherwise, including on a
usage or configuration error (Docker reserves exit code 2). Meant for a
container HEALTHCHECK, where there is no shell or curl.`

// healthcheck implements `starcite healthcheck`.
func healthcheck(args []string) int {
	path := "/health/ready"
	switch {
	case len(args) == 0 || (len(args) == 1 && args[0] == "ready"):
	case len(args) == 1 && args[0] == "live":
		path = "/health/live"
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		fmt.Println(healthcheckUsage)
		return 0
	default:
		fmt.Fprintln(os.Stderr, healthcheckUsage)
		return 1
	}
	u, err := healthcheckURL(config.NewEnv(os.LookupEnv), path)
	if err != nil {
		fmt.Println("unhealthy: configuration error:", err)
		return 1
	}
	c := &http.Client{
		Timeout: healthcheckTimeout,
		// A probe must not follow anything or pick up proxy settings.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := c.Get(u)
	if err != nil {
		fmt.Println("unhealthy:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		// Docker keeps this output in the container's health log.
		fmt.Printf("unhealthy: %s %d %s\n", path, resp.StatusCode, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Printf("healthy: %s\n", strings.TrimSpace(string(body)))
	return 0
}

// healthcheckURL is the probe's URL, from the variables the server reads:
// the ops listener's, else PORT and STARCITE_HTTP_HOST. The server binds 0.0.0.0 (or 127.0.0.1)
// when the host is unset, so a wildcard or unset host is probed on
// loopback.
func healthcheckURL(e *config.Env, path string) (string, error) {
	port := e.Port("STARCITE_OPS_PORT", 0)
	if port == 0 {
		port = e.Port("STARCITE_PPROF_PORT", 0)
	}
	host := e.Str("STARCITE_HTTP_HOST", "")
	if port != 0 { // the ops listener serves the probes (docs/operations.md#ops-listener)
		host = e.Str("STARCITE_OPS_HOST", e.Str("STARCITE_PPROF_HOST", host))
	} else {
		port = e.Port("PORT", 4000)
	}
	if err := e.Err(); err != nil {
		return "", err
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + path, nil
}
