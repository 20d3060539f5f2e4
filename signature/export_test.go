package signature

// SetCompareHook installs f to be called once per configured secret compared, and returns a
// function that removes it. Tests only; not safe while requests are being verified.
func SetCompareHook(f func()) (restore func()) {
	old := onCompare
	onCompare = f
	return func() { onCompare = old }
}
