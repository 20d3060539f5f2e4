// Package rulegen draws the values that realistic routing rules for Genesys Cloud events are
// made of, for the benchmarks that need thousands of such rules (the filter package's and the
// end-to-end benchmark). Large rule sets are large because of high-cardinality values (queues,
// divisions, organisations, wrap-up codes), not because of copies of one rule; the pools here
// have that shape, and each holds the value of the 2.7 KB conversation event the benchmarks
// match once, so that a rule drawing it can select that event.
package rulegen

import (
	"fmt"
	"math/rand/v2"

	"github.com/fanbridge/fanbridge/eventbridge"
)

// The values of the 2.7 KB conversation event, planted once in their pools.
const (
	Queue    = "4750048b-1994-41d4-8410-a5760c49a6cd"
	Division = "a6c1d06f-7d6e-4d36-a8c7-1f3bd7c36c9a"
	Org      = "32aa07aa-db1b-4987-abd0-9483601ec29d"
)

var (
	// Media are the interaction media types.
	Media = []string{"CHAT", "VOICE", "EMAIL", "MESSAGE", "CALLBACK"}
	// HotTopics are the busy conversation, presence and audit topics a third of the rules name.
	HotTopics = []string{
		"v2.detail.events.conversation.{id}.customer.end", "v2.detail.events.conversation.{id}.user.end",
		"v2.detail.events.conversation.{id}.acw", "v2.detail.events.conversation.{id}.wrapup",
		"v2.detail.events.conversation.{id}.customer.start", "v2.users.{id}.presence",
		"v2.audits.entitytype.{id}.entityid.{id}",
	}
	wrapupNames = []string{"Sale", "Upsell", "Refund", "Complaint", "Follow-up", "No answer", "Wrong number"}
)

// Values are the pools one rule set draws from, and the random source it draws with.
type Values struct {
	r *rand.Rand
	// Topics are every Genesys notification topic template.
	Topics []string
	// Queues (2,000), Divisions (500) and Orgs (200) are random ids, one of each the planted
	// value; Wrapups are 40 wrap-up codes, the first "Sale".
	Queues, Divisions, Orgs, Wrapups []string
}

// New draws the pools from r, which the caller goes on using for the rules themselves: the same
// seed gives the same pools and then the same rules.
func New(r *rand.Rand) *Values {
	v := &Values{r: r, Topics: eventbridge.KnownTopics()}
	v.Queues = v.ids(2000, Queue)
	v.Divisions = v.ids(500, Division)
	v.Orgs = v.ids(200, Org)
	v.Wrapups = make([]string, 40)
	for i := range v.Wrapups {
		v.Wrapups[i] = fmt.Sprintf("%s %d", v.Pick(wrapupNames), i)
	}
	v.Wrapups[0] = "Sale"
	return v
}

// Pick returns one element of s at random.
func (v *Values) Pick(s []string) string { return s[v.r.IntN(len(s))] }

// Topic returns a topic template: one of HotTopics a third of the time, else any topic.
func (v *Values) Topic() string {
	if v.r.IntN(3) == 0 {
		return v.Pick(HotTopics)
	}
	return v.Pick(v.Topics)
}

// ids returns size random UUIDs with planted at a random place among them.
func (v *Values) ids(size int, planted string) []string {
	r := v.r
	p := make([]string, size)
	for i := range p {
		p[i] = fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Int64N(1<<48))
	}
	p[r.IntN(size)] = planted
	return p
}
