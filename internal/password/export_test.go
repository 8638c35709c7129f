package password

// NewWithHook returns a Hasher that calls hook with the parameters in use each time it holds
// a hashing slot, just before it runs argon2id.
func NewWithHook(opt Options, hook func(Params)) *Hasher {
	h := New(opt)
	h.hook = hook
	return h
}

// DecodeHash is the PHC decoder, for the fuzz target.
func DecodeHash(s string) (Params, []byte, []byte, error) { return decode(s) }

// EncodeHash is the PHC encoder, for the fuzz target.
func EncodeHash(p Params, salt, key []byte) string { return encode(p, salt, key) }

// CommonCount returns how many passwords the shipped list holds.
func CommonCount() int {
	loadCommon()
	return len(common)
}
