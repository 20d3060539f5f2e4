package filedlq_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/sink"
)

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "dlq")
	defer os.RemoveAll(dir)

	q, err := filedlq.Open(dir) // SyncAlways: Put returns once the entry is fsynced
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	ctx := context.Background()
	ev := &fanbridge.Event{ID: "58fb5dac", Type: "v2.detail.events.conversation.{id}.customer.end",
		Raw: []byte(`{"id":"58fb5dac","detail-type":"v2.detail.events.conversation.{id}.customer.end"}`)}
	e := dlq.NewEntry(ev, "kafka-conversations", "ended", errors.New("kafka: NOT_ENOUGH_REPLICAS"), time.Now(), time.Now())
	if err := q.Put(ctx, e); err != nil {
		fmt.Println(err)
		return
	}

	_ = q.List(ctx, func(e dlq.Entry) error {
		fmt.Println(e.Sink, e.Event.ID, e.Error)
		fmt.Println(string(e.Event.Raw))
		return nil
	})
	// Output:
	// kafka-conversations 58fb5dac kafka: NOT_ENOUGH_REPLICAS
	// {"id":"58fb5dac","detail-type":"v2.detail.events.conversation.{id}.customer.end"}
}

func Example_redrive() {
	dir, _ := os.MkdirTemp("", "dlq")
	defer os.RemoveAll(dir)
	q, _ := filedlq.Open(dir, filedlq.WithSync(filedlq.SyncInterval(time.Second)))
	defer q.Close()

	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		ev := &fanbridge.Event{ID: id, Raw: []byte(`{}`)}
		_ = q.Put(ctx, dlq.NewEntry(ev, "crm", "all", errors.New("503"), time.Now(), time.Now()))
	}
	// The CRM is back: re-send what it missed, from a sink built around a function.
	crm := sink.Func(func(_ context.Context, e *fanbridge.Event) error {
		fmt.Println("delivered", e.ID)
		return nil
	})
	rep, err := dlq.Redrive(ctx, q, map[string]sink.Sink{"crm": crm}, nil)
	fmt.Println(rep.Redriven, rep.Removed, err)

	left := 0
	_ = q.List(ctx, func(dlq.Entry) error { left++; return nil })
	fmt.Println("left:", left)
	// Output:
	// delivered a
	// delivered b
	// 2 2 <nil>
	// left: 0
}

func ExampleSyncInterval() {
	dir, _ := os.MkdirTemp("", "dlq")
	defer os.RemoveAll(dir)
	// Put returns once the entry is in the page cache; a background fsync runs every second.
	// SyncAlways() (the default) and SyncNever() are the other policies.
	q, err := filedlq.Open(dir, filedlq.WithSync(filedlq.SyncInterval(time.Second)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	fmt.Println(filedlq.SyncInterval(time.Second), filedlq.SyncAlways(), filedlq.SyncNever())
	// Output: interval(1s) always never
}

func ExampleAppendLine() {
	line, _ := filedlq.AppendLine(nil, dlq.Entry{ID: "01J0", Sink: "crm", Event: fanbridge.Event{Raw: []byte(`{"id":"e"}`)}})
	fmt.Print(string(line))
	e, err := filedlq.ParseLine(line[:len(line)-1])
	fmt.Println(e.ID, e.Sink, string(e.Event.Raw), err)
	// Output:
	// {"crc32c":"9f36843f","entry":{"v":1,"id":"01J0","sink":"crm","event":{"id":"","raw":{"id":"e"}}}}
	// 01J0 crm {"id":"e"} <nil>
}
