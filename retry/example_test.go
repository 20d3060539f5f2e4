package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fanbridge/fanbridge/retry"
)

func ExampleRetrier_Do() {
	r, err := retry.New(retry.Policy{
		InitialInterval: time.Millisecond,
		MaxAttempts:     3,
	})
	if err != nil {
		panic(err)
	}
	calls := 0
	err = r.Do(context.Background(), func(ctx context.Context) error {
		calls++
		if calls < 2 {
			return errors.New("connection refused")
		}
		return nil
	})
	fmt.Println(calls, err)

	err = r.Do(context.Background(), func(ctx context.Context) error {
		return retry.Permanent(errors.New("unknown topic"))
	})
	var re *retry.Error
	if errors.As(err, &re) {
		fmt.Println(re.Attempts, re.Reason, retry.Classify(err))
	}
	// Output:
	// 2 <nil>
	// 1 permanent permanent
}
