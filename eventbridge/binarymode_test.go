package eventbridge_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fanbridge/fanbridge/eventbridge"
)

// A CloudEvent in the HTTP binding's binary mode carries its attributes in ce-* headers, which
// no format reads: decoded from its body alone it would be another event (a webhook with an id
// made from the body, the sender's id, type and source dropped). It is refused 415, naming the
// structured mode, and nothing is dispatched. In structured mode ce-* headers change nothing.
func TestCloudEventsBinaryModeIsRefused(t *testing.T) {
	rec := &recorder{}
	h := newHandler(t, rec, eventbridge.WithFormats(eventbridge.FormatCloudEvents, eventbridge.FormatWebhook))
	body := []byte(`{"event":"order.created","data":{"order":7}}`)
	w := post(h, body, "Ce-Specversion", "1.0", "Ce-Id", "A234-1234-1234", "Ce-Source", "/orders", "Ce-Type", "com.example.someevent")
	assert.Equal(t, http.StatusUnsupportedMediaType, w.Code)
	assert.Contains(t, w.Body.String(), "binary content mode")
	assert.Contains(t, w.Body.String(), "application/cloudevents+json")
	assert.Empty(t, rec.events)

	w = post(h, body) // the same body without the headers is a webhook
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())

	structured := []byte(`{"specversion":"1.0","id":"A234","source":"/orders","type":"com.example.someevent","data":{"order":7}}`)
	w = post(h, structured, "Content-Type", "application/cloudevents+json", "Ce-Specversion", "1.0")
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
	e, _ := rec.last(t)
	assert.Equal(t, "A234", e.ID)
}
