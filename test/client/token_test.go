package client

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"starcite/app/devjwt"
	"starcite/client"
	"starcite/test/harness"
)

// TestTokenRefresh: in jwt mode a tail outlives its tokens. At each
// token's exp the server ends the tail (close 4001 on the raw route, a
// token_expired push on the socket); the client fetches a new token from
// its refresh function and goes on from its cursor, over both
// transports. The commands send --token or $STARCITE_TOKEN.
func TestTokenRefresh(t *testing.T) {
	iss, err := devjwt.StartIssuer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	env := map[string]string{}
	for _, kv := range iss.NodeEnv() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	n := harness.StartNode(t, harness.Options{Env: env})
	nodes := []*harness.Node{n}
	admin := iss.Token("acme", "user:u1", "session:create session:read session:append", time.Hour)
	writer := newClient(t, nodes, client.WithToken(admin))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	for _, transport := range []struct {
		name string
		opts []client.TailOption
	}{{"raw-route", nil}, {"phoenix-socket", []client.TailOption{client.PhoenixSocket()}}} {
		t.Run(transport.name, func(t *testing.T) {
			session := "expiring-" + transport.name
			if _, err := writer.CreateSession(ctx, client.NewSession{ID: session}); err != nil {
				t.Fatal(err)
			}
			var issued atomic.Int32
			viewer := newClient(t, nodes, client.WithTokenRefresh(func(context.Context) (string, error) {
				issued.Add(1)
				return iss.Token("acme", "user:u1", "session:read", 2*time.Second), nil
			}))
			events := tailInto(ctx, viewer, session, transport.opts...)
			p := writer.Producer(session, "w")
			// One event per token: each is delivered, then the token
			// expires and the tail fetches the next one.
			for i := uint64(1); i <= 3; i++ {
				if _, err := p.Append(ctx, "n", map[string]uint64{"i": i}); err != nil {
					t.Fatal(err)
				}
				receive(t, events, i, i)
				await(t, "a new token", func() bool { return issued.Load() > int32(i) })
			}
			if _, err := p.Append(ctx, "n", map[string]uint64{"i": 4}); err != nil {
				t.Fatal(err)
			}
			receive(t, events, 4, 4)
		})
	}

	t.Run("commands", func(t *testing.T) {
		bin := harness.Binary(t)
		cases := []struct {
			env  map[string]string
			args []string
			code int
			err  string
		}{
			{nil, []string{"session", "get", "expiring-raw-route", "--token", admin}, 0, ""},
			{map[string]string{"STARCITE_TOKEN": admin}, []string{"tail", "expiring-raw-route"}, 0, ""},
			{map[string]string{"STARCITE_TOKEN": admin}, []string{"session", "get", "expiring-raw-route", "--token", "bad"}, 1,
				refusal("unauthorized", "Unauthorized")},
			{nil, []string{"append", "expiring-raw-route", "--type", "m", "--payload", "{}"}, 1, refusal("unauthorized", "Unauthorized")},
		}
		for _, tc := range cases {
			e := map[string]string{"STARCITE_URL": n.URL()}
			for k, v := range tc.env {
				e[k] = v
			}
			var out, errOut bytes.Buffer
			code, err := harness.Exec(bin, e, nil, &out, &errOut, wait, tc.args...)
			if err != nil || code != tc.code || (tc.err != "" && errOut.String() != tc.err) {
				t.Fatalf("%q: exit %d (%v), stdout %q, stderr %q", tc.args, code, err, out.String(), errOut.String())
			}
			if strings.Contains(out.String()+errOut.String(), admin) {
				t.Fatalf("%q printed the token", tc.args)
			}
		}
	})
}
