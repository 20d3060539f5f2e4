package signature

import "time"

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

// SetLogClock makes the rejection log limit read now, and returns a function that restores the
// clock. Tests only; not safe while requests are being verified.
func SetLogClock(now func() time.Time) (restore func()) {
	old := logClock
	logClock = now
	return func() { logClock = old }
}
