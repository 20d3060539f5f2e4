// Package fanbridge takes in Genesys Cloud events, checks who sent them, filters them, and fans
// each one out to several sinks, retrying each sink on its own and dead-lettering what still fails,
// so that no acknowledged event is lost.
//
// This package holds the Event model every other package shares, and the outcomes a dispatcher
// reports to an intake (ErrNoMatch, ErrDuplicate, ErrOverloaded, ErrClosed).
package fanbridge
