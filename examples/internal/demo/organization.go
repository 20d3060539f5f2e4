package demo

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/signature"
)

// Organization returns the Genesys Cloud organization id of value (GENESYS_ORGANIZATION_ID as
// given) without the blanks around it and in lower case, as Genesys writes it in an event's
// source, or "" when value is blank. Anything but a UUID is an error: the id is matched against
// every event's source, so a typo would refuse every event, and a sender does not retry a 403.
func Organization(value string) (string, error) {
	org := strings.ToLower(strings.TrimSpace(value))
	if org == "" {
		return "", nil
	}
	if !isUUID(org) {
		return "", fmt.Errorf("GENESYS_ORGANIZATION_ID: want the organization's id, a UUID such as bb14bed0-f8f9-445d-b9d1-10cecb8569d6, got %q", value)
	}
	return org, nil
}

// isUUID reports whether s is 32 lower-case hex digits in groups of 8-4-4-4-12.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// OrganizationSources is the source prefix of every partner event bus of the Genesys Cloud
// organization org, for eventbridge.WithAllowedSources.
func OrganizationSources(org string) string {
	return "aws.partner/genesys.com/cloud/" + org + "/"
}

// maxPeek bounds what BareNotificationsTo reads of a body that no earlier layer buffered; the
// intake's own limit, lower, answers 413 to what is over it.
const maxPeek = 1 << 20

// BareNotificationsTo hands requests that carry a bare Genesys notification (as the WebSocket
// Notification API sends it, eventbridge.FormatNotification) to bare, and every other request to
// other. A bare notification names no organization, so a check of the event's source
// (eventbridge.WithAllowedSources) belongs on other alone: an Amazon EventBridge envelope always
// names its organization, and the other formats can. A body that does not decode goes to other,
// which answers it.
//
// It decodes the body once more to learn its format. In front of it, signature.Verify has
// buffered the body already; otherwise it reads at most 1 MiB of it and hands the bytes on.
func BareNotificationsTo(bare, other http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := signature.BodyBytes(r)
		if !ok && r.Body != nil {
			b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPeek))
			if err != nil {
				// other answers the error as it answers its own reads: 413 or 400.
				r.Body = io.NopCloser(errReader{err})
				other.ServeHTTP(w, r)
				return
			}
			body = b
			r.Body = signature.NewBody(b)
		}
		if e, err := eventbridge.Decode(body, r.Header.Get("Content-Type")); err == nil &&
			e.Meta(fanbridge.MetaFormat) == string(eventbridge.FormatNotification) {
			bare.ServeHTTP(w, r)
			return
		}
		other.ServeHTTP(w, r)
	})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
