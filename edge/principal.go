package edge

// Scope is one permission a token may grant (docs/api.md#scopes).
type Scope uint8

// The scopes of the API.
const (
	ScopeCreate Scope = 1 << iota // session:create
	ScopeRead                     // session:read
	ScopeAppend                   // session:append
)

// Principal is who a request runs as: from a verified token, or the fixed
// service principal in none mode (docs/api.md#auth-modes).
type Principal struct {
	TenantID  string
	ID        string
	Type      string // user, agent or service
	SessionID string // non-empty for a session-locked token
	Scopes    Scope
	Expires   int64 // token exp in Unix seconds; 0 when the principal never expires
	open      bool  // none mode: every scope, lock and tenant check passes
}

// nonePrincipal is the principal of every request in none mode.
var nonePrincipal = Principal{TenantID: "service", ID: "service", Type: "service",
	Scopes: ScopeCreate | ScopeRead | ScopeAppend, open: true}

// Actor is the actor string derived from the principal, e.g. "user:u-42".
func (p *Principal) Actor() string { return p.Type + ":" + p.ID }

// Has reports whether the principal holds scope s.
func (p *Principal) Has(s Scope) bool { return p.open || p.Scopes&s != 0 }

// AllowsSession reports whether a session-locked principal may touch id.
func (p *Principal) AllowsSession(id string) bool {
	return p.open || p.SessionID == "" || p.SessionID == id
}

// AllowsTenant reports whether the principal may touch a session of tenant.
func (p *Principal) AllowsTenant(tenant string) bool { return p.open || p.TenantID == tenant }
