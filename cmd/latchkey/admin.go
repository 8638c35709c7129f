package main

// adminConfigSource says, on the admin console's policy page, where the policy comes from.
func adminConfigSource(c *Config) string {
	if c.configFile != "" {
		return "the configuration file " + c.configFile + ", overridden by LATCHKEY_* environment variables and flags"
	}
	return "the defaults, overridden by LATCHKEY_* environment variables and flags (no --config file is set)"
}
