package signature

// SetCompareHook installs f to be called once per configured secret compared, and returns a
// function that removes it. Tests only; not safe while requests are being verified.
func SetCompareHook(f func()) (restore func()) {
	old := onCompare
	onCompare = f
	return func() { onCompare = old }
}

// SetEd25519Hook installs f to be called once per ed25519 verification, and returns a function
// that removes it. Tests only; not safe while requests are being verified.
func SetEd25519Hook(f func()) (restore func()) {
	old := onEd25519
	onEd25519 = f
	return func() { onEd25519 = old }
}
