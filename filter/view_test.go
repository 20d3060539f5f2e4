package filter_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/filter"
)

// View is what Match reads: the envelope as received, or the EventBridge shape written from the
// fields with Data pasted in as it is, blanks included, so that offsets in MatchRaw's errors on
// it point at the right byte.
func TestView(t *testing.T) {
	raw := []byte(`{"detail-type":"t","detail":{"a":1}}`)
	assert.Equal(t, raw, filter.View(&fanbridge.Event{Type: "x", Raw: raw, Metadata: map[string]string{fanbridge.MetaFormat: "eventbridge"}}))

	e := &fanbridge.Event{ID: "n-1", Type: "v2.users.{id}.activity", Topic: "v2.users.u1.activity",
		Data:     json.RawMessage("{ \"a\" : 1,\n \"a\": 2 }"),
		Metadata: map[string]string{fanbridge.MetaFormat: "notification"}, Raw: []byte(`{"topicName":"v2.users.u1.activity"}`)}
	view := filter.View(e)
	assert.Equal(t, `{"id":"n-1","detail-type":"v2.users.{id}.activity","detail":{"topicName":"v2.users.u1.activity","eventBody":{ "a" : 1,`+"\n"+` "a": 2 }}}`, string(view))
	p, err := filter.ParsePattern([]byte(`{"detail":{"eventBody":{"a":[2]}}}`))
	require.NoError(t, err)
	_, err = p.MatchRaw(view)
	require.ErrorIs(t, err, filter.ErrInvalidEvent, "a repeated key is refused")
	assert.False(t, p.Match(e))

	assert.Nil(t, filter.View(&fanbridge.Event{Data: json.RawMessage(`1},"x":{"y":1`), Metadata: map[string]string{fanbridge.MetaFormat: "webhook"}}), "Data that is not one value has no view")
	assert.Nil(t, filter.View(nil))
}
