// Package devjwt is a development identity provider for jwt mode: RSA
// keys generated once per process, their JWKS entries and an HTTP
// endpoint serving them, and RS256 tokens signed with them. `starcite
// bench` (package bench) runs jwt-mode nodes with it; package edge's tests
// and test/auth take their keys and signatures from it. The server never
// imports it: a node only verifies tokens.
package devjwt

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"
)

// Keys is how many keys Key hands out.
const Keys = 3

var (
	keysOnce sync.Once
	keys     [Keys]*rsa.PrivateKey
)

// Key returns RSA key i (0 <= i < Keys), 2048 bits, generated on first
// use and the same for the rest of the process.
func Key(i int) *rsa.PrivateKey {
	keysOnce.Do(func() {
		for j := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(fmt.Sprintf("devjwt: generate RSA key: %v", err))
			}
			keys[j] = k
		}
	})
	return keys[i]
}

// JWK is the JWKS entry of an RSA public key under kid, for RS256.
func JWK(kid string, pub *rsa.PublicKey) map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]any{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// JWKS is the JWKS document {"keys": [...]} of entries.
func JWKS(entries ...map[string]any) []byte {
	if entries == nil {
		entries = []map[string]any{}
	}
	return mustJSON(map[string]any{"keys": entries})
}

// Sign returns the compact JWS of header and claims (JSON-encoded as
// given), signed by key with RS256 whatever the header says — so a test
// can sign a token whose header lies.
func Sign(key *rsa.PrivateKey, header map[string]any, claims any) string {
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64(mustJSON(header)) + "." + b64(mustJSON(claims))
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		panic(fmt.Sprintf("devjwt: sign: %v", err))
	}
	return input + "." + b64(sig)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("devjwt: encode %T: %v", v, err))
	}
	return b
}

// Issuer is an identity provider on loopback: Key(0) under kid "dev-1",
// its JWKS served over HTTP, and tokens it signs.
type Issuer struct {
	Issuer   string // the iss of its tokens
	Audience string // the aud of its tokens
	JWKSURL  string
	kid      string
	srv      *http.Server
}

// StartIssuer serves the issuer's JWKS on a free loopback port until
// Close.
func StartIssuer() (*Issuer, error) {
	i := &Issuer{Issuer: "https://dev.starcite.local", Audience: "starcite-api", kid: "dev-1"}
	doc := JWKS(JWK(i.kid, &Key(0).PublicKey))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dev JWKS listener: %w", err)
	}
	i.JWKSURL = "http://" + ln.Addr().String() + "/.well-known/jwks.json"
	i.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})}
	go i.srv.Serve(ln)
	return i, nil
}

// NodeEnv are the variables that make a node trust the issuer.
func (i *Issuer) NodeEnv() []string {
	return []string{
		"STARCITE_AUTH_MODE=jwt",
		"STARCITE_AUTH_JWT_ISSUER=" + i.Issuer,
		"STARCITE_AUTH_JWT_AUDIENCE=" + i.Audience,
		"STARCITE_AUTH_JWKS_URL=" + i.JWKSURL,
	}
}

// Token is a token for tenant and subject sub with the given
// space-separated scopes, valid for ttl from now.
func (i *Issuer) Token(tenant, sub, scope string, ttl time.Duration) string {
	now := time.Now().Unix()
	return Sign(Key(0), map[string]any{"alg": "RS256", "typ": "JWT", "kid": i.kid}, map[string]any{
		"iss": i.Issuer, "aud": i.Audience, "iat": now, "exp": now + int64(ttl/time.Second),
		"tenant_id": tenant, "sub": sub, "scope": scope,
	})
}

// Close stops serving the JWKS.
func (i *Issuer) Close() {
	if i != nil && i.srv != nil {
		i.srv.Close()
	}
}
