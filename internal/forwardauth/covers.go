package forwardauth

// Covers reports whether a rule names host, exactly or through "*.domain" (ports ignored).
// Rules without hosts (which match every host) cover nothing here: Covers is what lets the
// sign-in page send the browser back to an application after sign-in, and only the hosts an
// administrator wrote down are trusted for that.
func (rs *Rules) Covers(host string) bool {
	host = hostOnly(host)
	if host == "" {
		return false
	}
	for i := range rs.rules {
		r := &rs.rules[i]
		if len(r.exact) > 0 || len(r.suffixes) > 0 {
			if r.matchHost(host) {
				return true
			}
		}
	}
	return false
}
