package kafkadlq

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The partitions a Queue remembers for removals stay within maxPlacements entries however many
// it reads, and an ID read on several partitions keeps them all.
func TestPlacementsAreBounded(t *testing.T) {
	var pl placements
	for i := range maxPlacements + 100 {
		pl.remember(fmt.Sprint("id-", i), int32(i%3))
	}
	assert.Len(t, pl.m, maxPlacements)

	pl.remember("twice", 2)
	pl.remember("twice", 0)
	pl.remember("twice", 2)
	assert.Equal(t, []int32{2, 0}, pl.lookup("twice"))
	pl.forget([]string{"twice"})
	assert.Nil(t, pl.lookup("twice"))
	assert.Nil(t, pl.lookup("never-read"))
}
