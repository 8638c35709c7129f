package web

// DeskPatterns lists the agent console's routes ("METHOD /path"), for the authorization test.
func DeskPatterns() []string {
	var out []string
	for _, r := range deskRoutes {
		out = append(out, r.pattern)
	}
	return out
}
