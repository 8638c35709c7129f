// Package forwardauth decides what a request behind a reverse proxy needs: the rules of the
// forward-auth gate (nginx auth_request, Traefik forwardAuth, Caddy forward_auth). A rule
// matches hosts and paths, optionally only for some groups, and asks for nothing (bypass), a
// password, MFA, or refuses. It is on the path of every proxied request: rules are compiled
// once, and matching allocates nothing.
package forwardauth

import (
	"fmt"
	"slices"
	"strings"
)

// Policy is what a rule asks for.
type Policy string

// Policies, weakest first.
const (
	Bypass   Policy = "bypass"   // no sign-in
	Password Policy = "password" // a signed-in session (the password at least)
	MFA      Policy = "mfa"      // a session with a second factor
	Deny     Policy = "deny"     // nobody
)

// Valid reports whether p is a known policy.
func (p Policy) Valid() bool { return p == Bypass || p == Password || p == MFA || p == Deny }

// Rule is one line of the configuration.
type Rule struct {
	// Hosts are exact host names or "*.example.com" (any subdomain, not the apex); empty
	// matches every host. Ports are ignored.
	Hosts []string `yaml:"hosts"`
	// Paths are prefixes ("/admin/" matches "/admin/x"), or exact paths when they end in "$";
	// empty matches every path.
	Paths []string `yaml:"paths"`
	// Groups limit the rule to users in one of them (Latchkey's roles for now: admin, support,
	// user); empty means everyone.
	Groups []string `yaml:"groups"`
	Policy Policy   `yaml:"policy"`
}

// Rules is a compiled, ordered rule list: the first rule that matches decides.
type Rules struct {
	rules []rule
	def   Policy
}

type rule struct {
	exact    []string // lower-case host names
	suffixes []string // ".example.com"
	prefixes []string
	paths    []string // exact paths
	groups   []string
	policy   Policy
}

// Compile checks and compiles rules; def applies when no rule matches (typically MFA or
// Password: a gate is closed by default).
func Compile(rules []Rule, def Policy) (*Rules, error) {
	if !def.Valid() {
		return nil, fmt.Errorf("forward-auth: default policy %q: use bypass, password, mfa or deny", def)
	}
	out := &Rules{def: def}
	for i, r := range rules {
		if !r.Policy.Valid() {
			return nil, fmt.Errorf("forward-auth rule %d: policy %q: use bypass, password, mfa or deny", i+1, r.Policy)
		}
		c := rule{policy: r.Policy, groups: r.Groups}
		for _, h := range r.Hosts {
			h = strings.ToLower(strings.TrimSpace(h))
			switch {
			case strings.HasPrefix(h, "*."):
				c.suffixes = append(c.suffixes, h[1:])
			case h == "" || strings.ContainsAny(h, "*/: "):
				return nil, fmt.Errorf("forward-auth rule %d: host %q: use a name like app.example.com or *.example.com", i+1, h)
			default:
				c.exact = append(c.exact, h)
			}
		}
		for _, p := range r.Paths {
			if !strings.HasPrefix(p, "/") {
				return nil, fmt.Errorf("forward-auth rule %d: path %q must start with /", i+1, p)
			}
			if strings.HasSuffix(p, "$") {
				c.paths = append(c.paths, strings.TrimSuffix(p, "$"))
			} else {
				c.prefixes = append(c.prefixes, p)
			}
		}
		out.rules = append(out.rules, c)
	}
	return out, nil
}

// Decide returns the policy for a request to host and path by a user in groups; signedIn is
// false for an anonymous request. An anonymous request that reaches a rule limited to groups
// cannot know whether it applies: it needs at least a password, after which the rules are
// read again with the user's groups.
func (rs *Rules) Decide(host, path string, signedIn bool, groups []string) Policy {
	host = strings.TrimSuffix(hostOnly(host), ".")
	for i := range rs.rules {
		r := &rs.rules[i]
		if !r.matchHost(host) || !r.matchPath(path) {
			continue
		}
		if len(r.groups) > 0 {
			if !signedIn {
				return Password
			}
			if !slices.ContainsFunc(r.groups, func(g string) bool { return slices.Contains(groups, g) }) {
				continue
			}
		}
		return r.policy
	}
	return rs.def
}

func (r *rule) matchHost(host string) bool {
	if len(r.exact) == 0 && len(r.suffixes) == 0 {
		return true
	}
	for _, h := range r.exact {
		if equalFold(h, host) {
			return true
		}
	}
	for _, s := range r.suffixes {
		if len(host) > len(s) && equalFold(s, host[len(host)-len(s):]) {
			return true
		}
	}
	return false
}

func (r *rule) matchPath(path string) bool {
	if len(r.prefixes) == 0 && len(r.paths) == 0 {
		return true
	}
	for _, p := range r.paths {
		if path == p {
			return true
		}
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// hostOnly drops a port: "app.example.com:8443" → "app.example.com" ("[::1]:80" → "[::1]").
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		return h[:i]
	}
	return h
}

// equalFold compares an already lower-case a with b, ASCII only (host names).
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if a[i] != c {
			return false
		}
	}
	return true
}
