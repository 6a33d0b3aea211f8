package auth

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"starcite/app/devjwt"
	"starcite/test/harness"
)

// BenchmarkAppendLatency: a closed loop of sequential appends to one
// session of a single node, with auth none, with jwt and one token for
// every request (the verified-token cache answers), and with jwt and a
// new token per request (an RSA verification each). Reports p50/p99 in
// microseconds. Run e.g. with -benchtime=2000x.
func BenchmarkAppendLatency(b *testing.B) {
	j := newJWKS(b, devjwt.JWK("k1", &devjwt.Key(0).PublicKey))
	none := harness.StartNode(b, harness.Options{Env: map[string]string{"STARCITE_AUTH_MODE": "none"}})
	jwt := startJWTNode(b, j, nil)
	c := claims("acme", "user:bench", scCreate, scAppend)

	run := func(n *harness.Node, session string, tokens func(i int) string) func(b *testing.B) {
		seq := 0
		return func(b *testing.B) {
			hdr := func(i int) []string {
				if tokens == nil {
					return nil
				}
				return bearer(tokens(i))
			}
			if seq == 0 {
				expectStatus(b, "create", do(b, n, "POST", "/v1/sessions", map[string]any{"id": session}, hdr(0)...), 201)
			}
			// Tokens are minted before the clock starts.
			toks := make([][]string, b.N)
			for i := range toks {
				toks[i] = hdr(seq + i + 1)
			}
			lat := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := range b.N {
				seq++
				start := time.Now()
				r := do(b, n, "POST", "/v1/sessions/"+session+"/append", appendBody("bench", seq), toks[i]...)
				lat[i] = time.Since(start)
				if r.status != http.StatusCreated {
					b.Fatalf("append %d: %d %s", seq, r.status, r.body)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		}
	}
	one := mint(0, "k1", c)
	b.Run("none", run(none, "bench-none", nil))
	b.Run("jwt-cached", run(jwt, "bench-jwt", func(int) string { return one }))
	b.Run("jwt-new-token", run(jwt, "bench-jwt-new", func(i int) string {
		return mint(0, "k1", with(c, "jti", fmt.Sprint(i)))
	}))
}
