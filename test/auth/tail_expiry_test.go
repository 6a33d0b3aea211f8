package auth

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"starcite/app/devjwt"
)

// TestTailTokenExpiry: a tail socket lives as long as its token: it is
// closed with 4001 token_expired at exp (no leeway), and a token already
// past exp but still inside the leeway is accepted and closed at once.
func TestTailTokenExpiry(t *testing.T) {
	j := newJWKS(t, devjwt.JWK("k1", &devjwt.Key(1).PublicKey))
	n := startJWTNode(t, j, map[string]string{"STARCITE_AUTH_JWT_LEEWAY_SECONDS": "5"})
	admin := mint(1, "k1", claims("acme", "user:u1", "session:create", "session:read", "session:append"))
	expectStatus(t, "create", do(t, n, "POST", "/v1/sessions", map[string]any{"id": "exp"}, bearer(admin)...), 201)

	exp := time.Now().Unix() + 3
	short := mint(1, "k1", with(claims("acme", "user:u1", "session:read"), "exp", exp))
	c, st, body, err := n.DialTail("exp", "cursor=0", http.Header{"Authorization": {"Bearer " + short}})
	if err != nil {
		t.Fatalf("tail with a valid token: %d %s %v", st, body, err)
	}
	expectStatus(t, "append", do(t, n, "POST", "/v1/sessions/exp/append", appendBody("w", 1), bearer(admin)...), 201)
	if _, err := c.Collect(1, 1, 30*time.Second); err != nil {
		t.Fatalf("live event before expiry: %v", err)
	}
	code, reason, err := c.CloseCode(30 * time.Second)
	if err != nil || code != 4001 || reason != "token_expired" {
		t.Fatalf("close %d %q %v, want 4001 token_expired", code, reason, err)
	}
	if now := time.Now().Unix(); now < exp {
		t.Fatalf("closed at %d, before exp %d", now, exp)
	}

	// Past exp, inside the 5 s leeway: the upgrade succeeds (the leeway
	// applies to verification) and the socket closes straight away.
	stale := mint(1, "k1", with(claims("acme", "user:u1", "session:read"), "exp", time.Now().Unix()-2))
	q := "cursor=0&access_token=" + url.QueryEscape(stale)
	c, st, body, err = n.DialTail("exp", q, nil)
	if err != nil {
		t.Fatalf("tail with a token inside the leeway: %d %s %v", st, body, err)
	}
	if code, reason, err := c.CloseCode(30 * time.Second); err != nil || code != 4001 || reason != "token_expired" {
		t.Fatalf("close %d %q %v, want 4001 token_expired", code, reason, err)
	}
}
