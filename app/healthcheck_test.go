package main

import (
	"testing"

	"starcite/app/config"
)

// TestHealthcheckURL: the probe goes where the server serves /health:
// the ops listener when one is configured, else the API port; wildcard
// and unset hosts are probed on loopback.
func TestHealthcheckURL(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "http://127.0.0.1:4000/health/ready"},
		{map[string]string{"PORT": "4100", "STARCITE_HTTP_HOST": "10.0.0.5"}, "http://10.0.0.5:4100/health/ready"},
		{map[string]string{"STARCITE_HTTP_HOST": "::"}, "http://[::1]:4000/health/ready"},
		{map[string]string{"STARCITE_OPS_PORT": "9090"}, "http://127.0.0.1:9090/health/ready"},
		{map[string]string{"STARCITE_OPS_PORT": "9090", "STARCITE_HTTP_HOST": "10.0.0.5"}, "http://10.0.0.5:9090/health/ready"},
		{map[string]string{"STARCITE_OPS_PORT": "9090", "STARCITE_OPS_HOST": "0.0.0.0", "STARCITE_HTTP_HOST": "10.0.0.5"},
			"http://127.0.0.1:9090/health/ready"},
		{map[string]string{"STARCITE_PPROF_PORT": "6060", "STARCITE_PPROF_HOST": "127.0.0.2"}, "http://127.0.0.2:6060/health/ready"},
	} {
		env := config.NewEnv(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		if got, err := healthcheckURL(env, "/health/ready"); err != nil || got != tc.want {
			t.Errorf("%v: %s, %v; want %s", tc.env, got, err, tc.want)
		}
	}
	env := config.NewEnv(func(k string) (string, bool) {
		return map[string]string{"STARCITE_OPS_PORT": "x"}[k], k == "STARCITE_OPS_PORT"
	})
	if _, err := healthcheckURL(env, "/health/ready"); err == nil {
		t.Error("a bad ops port was accepted")
	}
}
