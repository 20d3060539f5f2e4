// Package hangup takes SIGHUP from the first moments of the process, so that a reload request sent
// while the service starts is kept instead of ending it.
//
// A Go program that has not asked for SIGHUP exits on it. The service asks in this package's init,
// which runs before the packages that take long to initialize (gRPC, OpenTelemetry, CEL, protocol
// buffers: they sort after it, and it needs only os/signal), and long before main reads its
// configuration. Before that, for the first instant after the process starts, SIGHUP still ends it,
// as it does any program.
package hangup

import (
	"os"
	"os/signal"
	"syscall"
)

var ch = make(chan os.Signal, 1)

func init() { signal.Notify(ch, syscall.SIGHUP) }

// Take returns the channel SIGHUP arrives on. It holds one signal: several sent before it is read
// count as one. It asks for SIGHUP again if Release gave it back.
func Take() <-chan os.Signal {
	signal.Notify(ch, syscall.SIGHUP)
	return ch
}

// Release gives SIGHUP back its default action, which ends the process: for the commands that have
// nothing to reload, and for the service once it has stopped.
func Release() { signal.Stop(ch) }
