package dlqtest

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fanbridge/fanbridge"
)

//go:embed testdata/*.json
var samples embed.FS

// SampleEvents returns real Genesys Cloud events as Amazon EventBridge delivers them, decoded the
// way an intake does: Raw is the envelope byte for byte (pretty-printed, as in the public
// samples), Data is the detail.eventBody inside Raw, and Metadata holds the account, region and
// correlation id.
func SampleEvents() []fanbridge.Event {
	files, err := samples.ReadDir("testdata")
	if err != nil {
		panic(err)
	}
	var out []fanbridge.Event
	for _, f := range files {
		raw, err := samples.ReadFile("testdata/" + f.Name())
		if err != nil {
			panic(err)
		}
		ev, err := decodeSample(raw)
		if err != nil {
			panic(fmt.Sprintf("dlqtest: sample %s: %v", f.Name(), err))
		}
		out = append(out, ev)
	}
	return out
}

func decodeSample(raw []byte) (fanbridge.Event, error) {
	var env struct {
		ID         string    `json:"id"`
		DetailType string    `json:"detail-type"`
		Source     string    `json:"source"`
		Account    string    `json:"account"`
		Time       time.Time `json:"time"`
		Region     string    `json:"region"`
		Detail     struct {
			TopicName string          `json:"topicName"`
			EventBody json.RawMessage `json:"eventBody"`
			Metadata  struct {
				CorrelationID string `json:"CorrelationId"`
			} `json:"metadata"`
		} `json:"detail"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fanbridge.Event{}, err
	}
	// Data is a window into Raw, as the intake's decoders produce it.
	at := bytes.Index(raw, env.Detail.EventBody)
	if at < 0 {
		return fanbridge.Event{}, fmt.Errorf("eventBody not found in the envelope")
	}
	ev := fanbridge.Event{
		ID:     env.ID,
		Type:   env.DetailType,
		Topic:  env.Detail.TopicName,
		Source: env.Source,
		Time:   env.Time,
		Data:   raw[at : at+len(env.Detail.EventBody) : at+len(env.Detail.EventBody)],
		Metadata: map[string]string{
			fanbridge.MetaAccount: env.Account,
			fanbridge.MetaRegion:  env.Region,
			fanbridge.MetaFormat:  "eventbridge",
		},
		Raw: raw,
	}
	if id := env.Detail.Metadata.CorrelationID; id != "" {
		ev.Metadata[fanbridge.MetaCorrelationID] = id
	}
	return ev, nil
}
