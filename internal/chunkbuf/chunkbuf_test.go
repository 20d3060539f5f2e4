package chunkbuf_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fanbridge/fanbridge/internal/chunkbuf"
)

func TestJoinKeepsHeadAndChunksInOrder(t *testing.T) {
	chunks := []*chunkbuf.Chunk{chunkbuf.Get(), chunkbuf.Get()}
	defer chunkbuf.Put(chunks)
	copy(chunks[0][:], bytes.Repeat([]byte("a"), chunkbuf.Size))
	copy(chunks[1][:], "bb")
	body := chunkbuf.Join([]byte("h"), chunks, 1+chunkbuf.Size+2)
	assert.Len(t, body, 1+chunkbuf.Size+2)
	assert.Equal(t, "h"+string(bytes.Repeat([]byte("a"), chunkbuf.Size))+"bb", string(body))
}
