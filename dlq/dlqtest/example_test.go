package dlqtest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
)

func ExampleNewMemory() {
	// A dispatcher under test dead-letters into memory; the test then looks at what arrived.
	q := dlqtest.NewMemory()
	ev := &fanbridge.Event{ID: "ev-1", Raw: []byte(`{}`)}
	_ = q.Put(context.Background(), dlq.NewEntry(ev, "grpc-crm", "all", errors.New("Unavailable"), time.Now(), time.Now()))
	fmt.Println(q.Len())
	// Output: 1
}
