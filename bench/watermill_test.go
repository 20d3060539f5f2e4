//go:build unix

package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmhttp "github.com/ThreeDotsLabs/watermill-http/v2/pkg/http"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-chi/chi"
)

// The Watermill pipeline, built as its documentation suggests for "HTTP in, Kafka out": the
// watermill-http subscriber turns each POST into a message and holds the request until the
// message is acked or nacked; a router handler decodes and matches it and returns the message to
// publish; the router publishes it with watermill-kafka's publisher (a Sarama SyncProducer, acks
// from every in-sync replica) and only then acks, so the HTTP answer follows the broker's
// acknowledgement. The signature is checked by a chi middleware in front of the subscriber,
// because Watermill has none of its own. A Watermill user decodes into a typed struct and writes
// the rules as Go code, which is what this does: faster than the tutorial's map walking.

// wmEvent is the part of the envelope the rules read.
type wmEvent struct {
	ID         string `json:"id"`
	DetailType string `json:"detail-type"`
	Source     string `json:"source"`
	Detail     struct {
		EventBody struct {
			QueueID               string   `json:"queueId"`
			DivisionID            string   `json:"divisionId"`
			MediaType             string   `json:"mediaType"`
			Direction             string   `json:"direction"`
			WrapupCode            string   `json:"wrapupCode"`
			DisconnectType        *string  `json:"disconnectType"`
			InteractingDurationMs *float64 `json:"interactingDurationMs"`
		} `json:"eventBody"`
	} `json:"detail"`
}

// wmRule is a rule written as Go code over the typed event.
type wmRule struct {
	name  string
	tests []func(*wmEvent) bool
}

func wmStringField(path string) func(*wmEvent) *string {
	switch path {
	case "detail-type":
		return func(e *wmEvent) *string { return &e.DetailType }
	case "source":
		return func(e *wmEvent) *string { return &e.Source }
	case "detail.eventBody.queueId":
		return func(e *wmEvent) *string { return &e.Detail.EventBody.QueueID }
	case "detail.eventBody.divisionId":
		return func(e *wmEvent) *string { return &e.Detail.EventBody.DivisionID }
	case "detail.eventBody.mediaType":
		return func(e *wmEvent) *string { return &e.Detail.EventBody.MediaType }
	case "detail.eventBody.direction":
		return func(e *wmEvent) *string { return &e.Detail.EventBody.Direction }
	case "detail.eventBody.wrapupCode":
		return func(e *wmEvent) *string { return &e.Detail.EventBody.WrapupCode }
	case "detail.eventBody.disconnectType":
		return func(e *wmEvent) *string { return e.Detail.EventBody.DisconnectType }
	}
	panic("watermill rules: no field for " + path)
}

func watermillRules(rules []rule) []wmRule {
	out := make([]wmRule, len(rules))
	for i, r := range rules {
		wr := wmRule{name: r.name}
		for _, c := range r.conds {
			switch c.kind {
			case condOneOf:
				field, values := wmStringField(c.path), c.values
				wr.tests = append(wr.tests, func(e *wmEvent) bool {
					s := field(e)
					if s == nil || *s == "" {
						return false
					}
					for _, v := range values {
						if *s == v {
							return true
						}
					}
					return false
				})
			case condPrefix:
				field, prefix := wmStringField(c.path), c.prefix
				wr.tests = append(wr.tests, func(e *wmEvent) bool {
					s := field(e)
					return s != nil && strings.HasPrefix(*s, prefix)
				})
			case condRange:
				if c.path != "detail.eventBody.interactingDurationMs" {
					panic("watermill rules: no numeric field " + c.path)
				}
				lo, hi := c.lo, c.hi
				wr.tests = append(wr.tests, func(e *wmEvent) bool {
					n := e.Detail.EventBody.InteractingDurationMs
					return n != nil && *n >= lo && *n < hi
				})
			case condAnythingBut:
				field, values := wmStringField(c.path), c.values
				wr.tests = append(wr.tests, func(e *wmEvent) bool {
					s := field(e)
					if s == nil {
						return false
					}
					for _, v := range values {
						if *s == v {
							return false
						}
					}
					return true
				})
			}
		}
		out[i] = wr
	}
	return out
}

func watermillMatch(e *wmEvent, rules []wmRule) []string {
	var matched []string
	for _, r := range rules {
		ok := true
		for _, test := range r.tests {
			if !test(e) {
				ok = false
				break
			}
		}
		if ok {
			matched = append(matched, r.name)
		}
	}
	return matched
}

// watermillPipeline is a running Watermill router behind an httptest server.
type watermillPipeline struct {
	server *httptest.Server
	router *message.Router
	pub    *kafka.Publisher
	done   chan error
}

func newWatermillPipeline(brokers []string, topic string, secret []byte, rules []wmRule) (*watermillPipeline, error) {
	// Watermill's recommended synchronous publisher configuration, with acks from every in-sync
	// replica as the other two pipelines have.
	saramaConfig := kafka.DefaultSaramaSyncPublisherConfig()
	saramaConfig.Producer.RequiredAcks = sarama.WaitForAll
	saramaConfig.Producer.Compression = sarama.CompressionNone
	if snappy() {
		saramaConfig.Producer.Compression = sarama.CompressionSnappy
	}
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers:               brokers,
		Marshaler:             kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: saramaConfig,
	}, watermill.NopLogger{})
	if err != nil {
		return nil, err
	}
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		_ = pub.Close()
		return nil, err
	}

	mux := chi.NewRouter()
	mux.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if !tutorialSignatureValid(secret, body, r.Header.Get(signatureHeader)) {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
		})
	})
	sub, err := wmhttp.NewSubscriber("127.0.0.1:0", wmhttp.SubscriberConfig{
		Router: mux,
		UnmarshalMessageFunc: func(_ string, r *http.Request) (*message.Message, error) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return nil, err
			}
			return message.NewMessage(watermill.NewUUID(), body), nil
		},
	}, watermill.NopLogger{})
	if err != nil {
		_ = pub.Close()
		return nil, err
	}
	router.AddHandler("genesys-events", "/events", sub, topic, pub, func(msg *message.Message) ([]*message.Message, error) {
		var e wmEvent
		if err := json.Unmarshal(msg.Payload, &e); err != nil {
			return nil, err
		}
		if e.ID == "" || e.DetailType == "" {
			return nil, errors.New("invalid event")
		}
		if len(watermillMatch(&e, rules)) == 0 {
			return nil, nil
		}
		out := message.NewMessage(e.ID, msg.Payload)
		out.Metadata.Set("ce_type", e.DetailType)
		return []*message.Message{out}, nil
	})

	p := &watermillPipeline{router: router, pub: pub, done: make(chan error, 1)}
	go func() { p.done <- router.Run(context.Background()) }()
	select {
	case <-router.Running():
	case err := <-p.done:
		_ = pub.Close()
		return nil, fmt.Errorf("watermill router stopped at start: %w", err)
	}
	// The subscriber registered its route on mux when the router started; serve mux ourselves on
	// a loopback listener, as the other pipelines are served.
	p.server = httptest.NewServer(mux)
	return p, nil
}

func (p *watermillPipeline) Close() error {
	p.server.Close()
	err := p.router.Close()
	<-p.done
	return errors.Join(err, p.pub.Close())
}
