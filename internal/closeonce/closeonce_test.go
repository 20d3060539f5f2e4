package closeonce_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/internal/closeonce"
)

var errClose = errors.New("close failed")

func TestEveryWaitGetsTheResult(t *testing.T) {
	d := closeonce.New()
	d.Start(context.Background(), func() error { return errClose }) // runs in place
	for range 3 {
		assert.ErrorIs(t, d.Wait(context.Background(), "x"), errClose)
	}
}

func TestWaitStopsWithItsContextWhileTheCloseCarriesOn(t *testing.T) {
	d := closeonce.New()
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	d.Start(ctx, func() error { <-release; return nil }) // ctx can end: runs on a goroutine
	cancel()
	err := d.Wait(ctx, "kafkasink")
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "kafkasink: close: stopped waiting while the sink is still closing")

	close(release)
	deadline, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	assert.NoError(t, d.Wait(deadline, "kafkasink"), "the close finished without its first caller")
	assert.NoError(t, d.Wait(ctx, "kafkasink"), "a finished close wins over an ended context")
}
