package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// cookieDomain is session.cookie_domain normalised: lower case, without a leading dot.
func (c *Config) cookieDomain() string {
	return strings.TrimPrefix(strings.ToLower(strings.TrimSpace(c.Session.CookieDomain)), ".")
}

// cookieDomainProblem explains what is wrong with session.cookie_domain, or returns "". The
// domain must be a host name (no scheme, port or IP address) that covers the public URL's
// host: a browser ignores a cookie whose domain does not.
func (c *Config) cookieDomainProblem() string {
	d := c.cookieDomain()
	if d == "" {
		return ""
	}
	if strings.ContainsAny(d, ":/ *@\\") || strings.HasSuffix(d, ".") || net.ParseIP(d) != nil || strings.Contains(d, "..") {
		return fmt.Sprintf("session.cookie_domain %q must be a domain name like example.com", c.Session.CookieDomain)
	}
	var host string
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err == nil {
			host = strings.ToLower(u.Hostname())
		}
	} else if h, _, err := net.SplitHostPort(c.Addr); err == nil {
		host = strings.ToLower(h)
	}
	if host != d && !strings.HasSuffix(host, "."+d) {
		return fmt.Sprintf("session.cookie_domain %q must cover the public URL's host %q (the same name or a parent of it)", d, host)
	}
	return ""
}
