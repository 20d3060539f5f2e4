package filter_test

import (
	"errors"
	"fmt"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/filter"
)

// A Genesys presence audit event as the EventBridge integration delivers it (shortened).
const presenceEnvelope = `{
  "version": "0",
  "id": "4cbedb0f-4dfd-4c8e-9e57-0acded092527",
  "detail-type": "v2.audits.entitytype.{id}.entityid.{id}",
  "source": "aws.partner/genesys.com/cloud/bb14bed0-f8f9-445d-b9d1-10cecb8569d6/quickstart-test",
  "detail": {
    "topicName": "v2.audits.entitytype.UserPresence.entityid.278522be-1683-4877-8257-4164a177be89",
    "eventBody": {
      "entityType": "UserPresence",
      "action": "Update",
      "propertyChanges": [
        {"property": "PRESENCE", "oldValues": ["Break"], "newValues": ["Available"]}
      ]
    }
  }
}`

func ExampleParsePattern() {
	p, err := filter.ParsePattern([]byte(`{
	  "detail-type": [{"prefix": "v2.audits."}],
	  "detail": {"eventBody": {"propertyChanges": {"property": ["PRESENCE"], "newValues": ["Available"]}}}
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	e := &fanbridge.Event{Raw: []byte(presenceEnvelope)}
	fmt.Println(p.Match(e))
	// Output: true
}

func ExampleParsePattern_error() {
	_, err := filter.ParsePattern([]byte(`{"detail": {"eventBody": {"mediaType": [{"prefix": 5}]}}}`))
	fmt.Println(err)
	fmt.Println(errors.Is(err, filter.ErrInvalidPattern))
	// Output:
	// filter: pattern at "detail.eventBody.mediaType": "prefix" wants a string
	// true
}

func ExampleNewMatcher() {
	m := filter.NewMatcher()
	rules := map[string]string{
		"available":     `{"detail": {"eventBody": {"propertyChanges": {"newValues": ["Available"]}}}}`,
		"went-on-break": `{"detail": {"eventBody": {"propertyChanges": {"newValues": ["Break"]}}}}`,
		"audits":        `{"detail-type": [{"prefix": "v2.audits."}]}`,
		"long-chats":    `{"detail": {"eventBody": {"mediaType": ["CHAT"], "interactingDurationMs": [{"numeric": [">", 120000]}]}}}`,
	}
	for name, src := range rules {
		if err := m.Add(name, []byte(src)); err != nil {
			fmt.Println(err)
			return
		}
	}
	var names []string // reuse across events: names = m.Match(e, names[:0])
	names = m.Match(&fanbridge.Event{Raw: []byte(presenceEnvelope)}, names[:0])
	fmt.Println(names)
	// Output: [audits available]
}

func ExampleTest() {
	ok, err := filter.Test(
		[]byte(`{"detail": {"eventBody": {"action": [{"equals-ignore-case": "update"}]}}}`),
		[]byte(presenceEnvelope),
	)
	fmt.Println(ok, err)
	// Output: true <nil>
}

func ExampleExpr() {
	x, err := filter.Expr(`data.mediaType == 'CHAT' && data.interactingDurationMs > 120000`)
	if err != nil {
		fmt.Println(err)
		return
	}
	e := &fanbridge.Event{
		Type: "v2.detail.events.conversation.{id}.customer.end",
		Data: []byte(`{"mediaType": "CHAT", "interactingDurationMs": 185000}`),
	}
	fmt.Println(x.Match(e))
	// Output: true
}

func ExampleMatchExprs() {
	exprs := []*filter.Expression{
		filter.MustExpr(`data.mediaType == 'VOICE'`),
		filter.MustExpr(`data.mediaType == 'CHAT'`),
		filter.MustExpr(`event.type.endsWith('.customer.end')`),
	}
	e := &fanbridge.Event{
		Type: "v2.detail.events.conversation.{id}.customer.end",
		Data: []byte(`{"mediaType": "CHAT"}`),
	}
	fmt.Println(filter.MatchExprs(e, exprs, nil))
	// Output: [1 2]
}

func ExampleField() {
	wrapup := filter.All(
		filter.Type("v2.detail.events.conversation.{id}.wrapup"),
		filter.Field("wrapupCode").In("Sale", "Upsell"),
		filter.Field("wrapupDurationMs").Lt(30000),
	)
	e := &fanbridge.Event{
		Type: "v2.detail.events.conversation.{id}.wrapup",
		Data: []byte(`{"wrapupCode": "Upsell", "wrapupDurationMs": 12000}`),
	}
	fmt.Println(wrapup.Match(e))
	// Output: true
}

func ExampleField_arrays() {
	// A path looks through arrays: any element may satisfy the predicate.
	available := filter.Field("propertyChanges.newValues").Eq("Available")
	e := &fanbridge.Event{Data: []byte(`{"propertyChanges": [{"newValues": ["Busy"]}, {"newValues": ["Available"]}]}`)}
	fmt.Println(available.Match(e))
	// Output: true
}

func ExampleType() {
	presence := filter.Type("v2.users.{id}.presence")
	fmt.Println(presence.Match(&fanbridge.Event{Type: "v2.users.{id}.presence"}))
	fmt.Println(presence.Match(&fanbridge.Event{Type: "v2.users.6a3af858.presence"}))
	fmt.Println(presence.Match(&fanbridge.Event{Type: "v2.users.{id}.activity"}))
	// Output:
	// true
	// true
	// false
}

func ExampleNot() {
	// user.end also fires on transfers; many routes want only real ends.
	realEnd := filter.And(
		filter.Type("v2.detail.events.conversation.{id}.user.end"),
		filter.Not(filter.Field("disconnectType").Eq("transfer")),
	)
	e := &fanbridge.Event{Type: "v2.detail.events.conversation.{id}.user.end", Data: []byte(`{"disconnectType": "transfer"}`)}
	fmt.Println(realEnd.Match(e))
	// Output: false
}
