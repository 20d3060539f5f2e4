package signature

import (
	"crypto/sha256"
	"crypto/subtle"
	"unsafe"
)

// onCompare, when set (by tests only), is called once per secret compared. It lets a test prove
// that every configured secret is compared on every request, matched or not.
var onCompare func()

func countCompare() {
	if onCompare != nil {
		onCompare()
	}
}

// digest is the SHA-256 of a credential. Comparing digests instead of the credentials themselves
// makes every comparison the same length, so timing reveals neither a key's content nor its length.
type digest [sha256.Size]byte

func digestOf(s string) digest { return sha256.Sum256(bytesOf(s)) }

// digestSet holds the digests of several configured credentials (rotation: old and new at once).
type digestSet []digest

// match returns the index of the credential whose digest equals d, or -1. It compares against
// every credential without stopping early, so the time taken does not depend on which one matched
// or whether any did.
func (s digestSet) match(d *digest) int {
	idx := -1
	for i := range s {
		countCompare()
		eq := subtle.ConstantTimeCompare(d[:], s[i][:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
	}
	return idx
}

// bytesOf views s as a byte slice without copying. Callers only read it: hashing a header value
// must not cost an allocation per request.
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
