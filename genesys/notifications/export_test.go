package notifications

import "time"

// WithLateCreationGrace sets how long after a lost creation's failure Genesys may still carry it
// out (see lateCreationGrace), so that tests against the fake, which never does, need not wait for
// it to pass. The default is 5 minutes.
func WithLateCreationGrace(d time.Duration) Option {
	return optionFunc(func(c *config) { c.lateGrace = d })
}
