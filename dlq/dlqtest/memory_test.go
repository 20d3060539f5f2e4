package dlqtest_test

import (
	"testing"

	"github.com/fanbridge/fanbridge/dlq/dlqtest"
)

func TestMemoryConformance(t *testing.T) {
	dlqtest.Run(t, dlqtest.Harness{
		New: func(t *testing.T) dlqtest.Opener {
			return func(t *testing.T) dlqtest.Store { return dlqtest.NewMemory() }
		},
		Features: dlqtest.Features{Delete: true, Ordered: true},
	})
}
