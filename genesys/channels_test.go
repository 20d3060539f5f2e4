package genesys_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
)

func TestChannels(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testContext(t)

	ch, err := f.client.CreateChannel(ctx)
	require.NoError(t, err)
	assert.NotEmpty(t, ch.ID)
	assert.Contains(t, ch.ConnectURI, ch.ID)
	assert.WithinDuration(t, time.Now().Add(genesys.ChannelLifetime), ch.Expires, time.Minute)

	topics := []string{"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence", "v2.routing.queues.4750048b-1994-41d4-8410-a5760c49a6cd.users"}
	require.NoError(t, f.client.SetSubscriptions(ctx, ch.ID, topics))
	info := f.srv.Channels()
	require.Len(t, info, 1)
	assert.Equal(t, 2, info[0].Topics)

	t.Run("rejected before any request", func(t *testing.T) {
		f.srv.ResetLog()
		err := f.client.SetSubscriptions(ctx, ch.ID, []string{"v2.users.{id}.presence"})
		assert.ErrorIs(t, err, genesys.ErrTemplateTopic)
		assert.Contains(t, err.Error(), "v2.users.{id}.presence")

		many := make([]string, genesys.MaxTopicsPerChannel+1)
		for i := range many {
			many[i] = fmt.Sprintf("v2.users.00000000-0000-4000-8000-%012d.presence", i)
		}
		err = f.client.SetSubscriptions(ctx, ch.ID, many)
		assert.ErrorIs(t, err, genesys.ErrTooManyTopics)

		assert.Error(t, f.client.SetSubscriptions(ctx, ch.ID, []string{""}))
		assert.Error(t, f.client.SetSubscriptions(ctx, "", topics))
		assert.Empty(t, f.srv.Requests())
	})
	t.Run("server refuses unknown topics", func(t *testing.T) {
		err := f.client.SetSubscriptions(ctx, ch.ID, []string{"v2.users.x.mood"})
		assert.ErrorIs(t, err, genesys.ErrBadRequest)
	})
	t.Run("unknown channel", func(t *testing.T) {
		err := f.client.SetSubscriptions(ctx, "no-such-channel", topics)
		assert.True(t, genesys.IsNotFound(err))
	})
	t.Run("the 21st channel evicts the oldest", func(t *testing.T) {
		for range genesys.MaxChannels {
			_, err := f.client.CreateChannel(ctx)
			require.NoError(t, err)
		}
		assert.Len(t, f.srv.Channels(), genesys.MaxChannels)
		assert.Equal(t, http.StatusOK, f.srv.Requests()[len(f.srv.Requests())-1].Status)
	})
}

func TestAvailableTopics(t *testing.T) {
	f := newFixture(t, nil)
	topics, err := f.client.AvailableTopics(testContext(t))
	require.NoError(t, err)
	require.Len(t, topics, len(genesystest.Topics()))
	byID := map[string]genesys.Topic{}
	for _, tp := range topics {
		byID[tp.ID] = tp
	}
	assert.True(t, byID["v2.users.{id}.presence"].SupportsEventBridge())
	assert.False(t, byID["v2.system.socket_closing"].SupportsEventBridge())
	assert.True(t, genesys.Topic{ID: "x"}.SupportsEventBridge(), "unknown transports are assumed to work")
	assert.True(t, genesys.Topic{Transports: []string{"eventbridge"}}.SupportsEventBridge())
	reqs := f.srv.Requests()
	assert.Contains(t, reqs[len(reqs)-1].Query, "expand=transports")
}
