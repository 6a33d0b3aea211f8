package devjwt_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"starcite/app/devjwt"
	"starcite/edge"
)

// TestIssuerTokensPassTheNodesVerifier: a node configured by NodeEnv
// accepts the issuer's tokens — the verifier of package edge fetches the
// served JWKS and checks the signature and claims — and refuses one
// signed by another key.
func TestIssuerTokensPassTheNodesVerifier(t *testing.T) {
	iss, err := devjwt.StartIssuer()
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	a, err := edge.NewJWTAuth(edge.JWTConfig{Issuer: iss.Issuer, Audience: iss.Audience, JWKSURL: iss.JWKSURL,
		Leeway: time.Second, JWKSRefresh: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	authenticate := func(tok string) (edge.Principal, bool) {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/v1/sessions")
		ctx.Request.Header.Set("Authorization", "Bearer "+tok)
		p, aerr := a.Authenticate(&ctx)
		return p, aerr == nil
	}

	p, ok := authenticate(iss.Token("bench", "service:bench", "session:read session:append", time.Hour))
	if !ok || p.TenantID != "bench" || p.Actor() != "service:bench" || !p.Has(edge.ScopeAppend) || p.Has(edge.ScopeCreate) {
		t.Fatalf("issuer's token: ok=%v principal %+v", ok, p)
	}
	now := time.Now().Unix()
	forged := devjwt.Sign(devjwt.Key(1), map[string]any{"alg": "RS256", "typ": "JWT", "kid": "dev-1"}, map[string]any{
		"iss": iss.Issuer, "aud": iss.Audience, "iat": now, "exp": now + 60, "tenant_id": "bench", "sub": "service:bench",
		"scope": "session:read"})
	if _, ok := authenticate(forged); ok {
		t.Fatal("a token signed by another key was accepted")
	}
}
