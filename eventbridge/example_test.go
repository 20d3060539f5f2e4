package eventbridge_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
)

func ExampleNewHandler() {
	// A Dispatcher that takes presence events and ignores the rest; fanout.Dispatcher is the real one.
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		if e.Type != "v2.users.{id}.presence" {
			return fanbridge.ErrNoMatch
		}
		fmt.Println("dispatching", e.ID, "from account", e.Meta(fanbridge.MetaAccount))
		return nil
	})
	h, err := eventbridge.NewHandler(d,
		eventbridge.WithAllowedSources("aws.partner/genesys.com/cloud/3b03b67a-2349-4a03-8b28-c8ac5c26c49a/"),
		eventbridge.WithDispatchTimeout(4*time.Second),
	)
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	send := func(body string) {
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, string(answer))
	}
	const envelope = `{"version":"0","id":"%s","detail-type":"%s","source":"aws.partner/genesys.com/cloud/3b03b67a-2349-4a03-8b28-c8ac5c26c49a/fanbridge","account":"123456789012","time":"2024-05-01T12:00:00Z","region":"eu-west-1","resources":[],"detail":{"topicName":"v2.users.8b0e1a9e-3f4c-4a43-9f7c-1c2d3e4f5a6b.presence","version":"2","eventBody":{"presenceDefinition":{"systemPresence":"AVAILABLE"}}}}`
	send(fmt.Sprintf(envelope, "6f1c1c4e-0d3a-4a8e-9c43-5f1f0e2b8d11", "v2.users.{id}.presence"))
	send(fmt.Sprintf(envelope, "0b7e5a62-6a51-4f0c-a0c4-77d7f0a5e7c2", "v2.users.{id}.activity"))
	send(`{"not":"an event"}`)
	// Output:
	// dispatching 6f1c1c4e-0d3a-4a8e-9c43-5f1f0e2b8d11 from account 123456789012
	// 200 {"status":"delivered","id":"6f1c1c4e-0d3a-4a8e-9c43-5f1f0e2b8d11"}
	// 200 {"status":"ignored"}
	// 400 {"error":"eventbridge: unknown event format: no known envelope keys (detail-type, specversion, topicName, event, eventType, channel with direction, type with data)"}
}

func ExampleDecode() {
	body := []byte(`{"version":"0","id":"58fb5dac-f077-4eec-a25f-c638dbdd4368","detail-type":"v2.detail.events.conversation.{id}.customer.end","source":"aws.partner/genesys.com/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/bus","account":"123456789012","time":"2022-04-06T09:30:45Z","region":"us-east-1","resources":[],"detail":{"topicName":"v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end","version":"2","eventBody":{"eventTime":1649237444949,"mediaType":"CHAT"},"metadata":{"CorrelationId":"7272d362-23b2-4c14-9d40-dc7b7683153a"},"timestamp":"2022-04-06T09:30:45.013Z"}}`)
	e, err := eventbridge.Decode(body, "application/json")
	if err != nil {
		panic(err)
	}
	fmt.Println(e.ID)
	fmt.Println(e.Type)
	fmt.Println(e.Topic)
	fmt.Println(e.Time.Format(time.RFC3339Nano))
	fmt.Println(string(e.Data))
	fmt.Println(e.Meta(fanbridge.MetaCorrelationID), e.Meta(fanbridge.MetaFormat))

	_, err = eventbridge.Decode([]byte(`{"id": 7}`), "application/json")
	fmt.Println(err)
	// Output:
	// 58fb5dac-f077-4eec-a25f-c638dbdd4368
	// v2.detail.events.conversation.{id}.customer.end
	// v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end
	// 2022-04-06T09:30:45.013Z
	// {"eventTime":1649237444949,"mediaType":"CHAT"}
	// 7272d362-23b2-4c14-9d40-dc7b7683153a eventbridge
	// eventbridge: unknown event format: no known envelope keys (detail-type, specversion, topicName, event, eventType, channel with direction, type with data)
}

func ExampleDecodeNotification() {
	msg := []byte(`{"topicName":"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.activity","version":"2","eventBody":{"routingStatus":{"status":"OFF_QUEUE"}},"metadata":{"CorrelationId":"9e8067c7-8b35-4e54-add9-db24e7d6f086"}}`)
	e, err := eventbridge.DecodeNotification(msg)
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Type)
	fmt.Println(len(e.ID), "hex digits, the same for every redelivery of these bytes")

	hb, _ := eventbridge.DecodeNotification([]byte(`{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}`))
	fmt.Println(eventbridge.IsHeartbeat(hb))
	// Output:
	// v2.users.{id}.activity
	// 32 hex digits, the same for every redelivery of these bytes
	// true
}

func ExampleTopicTemplate() {
	fmt.Println(eventbridge.TopicTemplate("v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"))
	fmt.Println(eventbridge.TopicTemplate("v2.audits.entitytype.OAuthClient.entityid.46a10c81-ca63-4bfe-bc9d-3fbf41ee06b5"))
	// Output:
	// v2.users.{id}.presence
	// v2.audits.entitytype.{id}.entityid.{id}
}

func ExampleNewDecoder() {
	d, err := eventbridge.NewDecoder(eventbridge.FormatCloudEvents)
	if err != nil {
		panic(err)
	}
	e, err := d.Decode([]byte(`{"specversion":"1.0","id":"42","source":"/crm","type":"com.example.ticket.closed","subject":"ticket-7","tenant":"acme","data":{"ok":true}}`),
		"application/cloudevents+json")
	if err != nil {
		panic(err)
	}
	fmt.Println(e.ID, e.Type, e.Topic, e.Meta("tenant"), string(e.Data))
	// Output:
	// 42 com.example.ticket.closed ticket-7 acme {"ok":true}
}

func ExampleWithCloudEventsBinaryMode() {
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		fmt.Println(e.ID, e.Type, e.Source, e.Topic, string(e.Data))
		return nil
	})
	h, err := eventbridge.NewHandler(d, eventbridge.WithCloudEventsBinaryMode())
	if err != nil {
		panic(err)
	}
	// Binary content mode: the attributes in ce-* headers (percent-encoded), the data as the body.
	r := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(`{"orderId":7}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Ce-Specversion", "1.0")
	r.Header.Set("Ce-Id", "A234-1234-1234")
	r.Header.Set("Ce-Source", "/orders")
	r.Header.Set("Ce-Type", "com.example.order.created")
	r.Header.Set("Ce-Subject", "order%207")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println(w.Code)
	// Output:
	// A234-1234-1234 com.example.order.created /orders order 7 {"orderId":7}
	// 200
}
