package latchkey

// Setting keys used by the server.
const (
	// SettingSetupToken holds the hex SHA-256 of the one-time first-admin setup token.
	SettingSetupToken = "setup_token_sha256"
)

// SettingStore is a small key/value table for server state that is not configuration.
type SettingStore interface {
	// FindSetting returns ENotFound when the key is unset.
	FindSetting(ctx Context, key string) (string, error)
	// SetSetting inserts or replaces the value.
	SetSetting(ctx Context, key, value string) error
	// ConsumeSetting deletes the key if and only if it holds value, atomically, and reports
	// whether it did. Used for single-use tokens.
	ConsumeSetting(ctx Context, key, value string) (bool, error)
}
