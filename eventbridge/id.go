package eventbridge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/fanbridge/fanbridge/signature"
)

// idLen is the length of a synthesized ID: 128 bits in hex.
const idLen = 32

// synthesizeID derives an ID for formats that carry none: the first 128 bits, in hex, of the
// SHA-256 of parts and body, each part preceded by its length. The parts are what tells one event
// from another when bodies repeat (a topic or type, a correlation id, a timestamp); a sender that
// redelivers the same message produces the same ID, so deduplication still works.
func synthesizeID(dst *[idLen]byte, body []byte, parts ...[]byte) {
	h := sha256.New()
	var n [4]byte
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	h.Write(body)
	var sum [sha256.Size]byte
	hex.Encode(dst[:], h.Sum(sum[:0])[:idLen/2])
}

// messageIDPart comes first in the digest of an ID derived from a sender's message id, so that
// such an ID never equals one derived from a body, whose first part is a topic or a type.
var messageIDPart = []byte("webhook-id")

// messageID returns the message id of the verified sender in ctx (signature.IdentityFrom): the
// Standard Webhooks webhook-id, which names one message, is the same on each of the sender's
// retries of it, and is never reused for another. It is "" when ctx has none.
func messageID(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	id, ok := signature.IdentityFrom(ctx)
	if !ok {
		return ""
	}
	return id.MessageID
}

// eventID sets dst to the ID of an event whose format carries no id of its own: derived from the
// sender's message id when there is one; else from the digest of parts and body when distinct
// says that they tell this event from another with the same content (a correlation id, a
// timestamp); else, when nothing does, random. A random ID is never merged with another event: a
// sender's retry of such a body is delivered again rather than a new event with the same content
// being taken for a duplicate and lost.
func eventID(dst *[idLen]byte, msgID string, distinct bool, body []byte, parts ...[]byte) {
	switch {
	case msgID != "":
		synthesizeID(dst, nil, messageIDPart, []byte(msgID))
	case distinct:
		synthesizeID(dst, body, parts...)
	default:
		randomID(dst)
	}
}

// randomID sets dst to 128 random bits in hex, the form of a derived ID.
func randomID(dst *[idLen]byte) {
	var b [idLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails, and fills b entirely
	hex.Encode(dst[:], b[:])
}
