// Package demo is the plumbing the example programs share: the process around each program, its
// flags, the credentials it accepts, its HTTP server and the sender its offline demo plays. It is
// not part of fanbridge's API, and only the examples can import it. What each example exists to
// teach (its sinks, routes and filters, the fanout.Dispatcher, the eventbridge.Handler and the
// signature.Verify that guards it, where it is mounted) stays in that example's main.go.
package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/fanbridge/fanbridge/signature"
)

// APIKeyHeader is how an Amazon EventBridge API destination proves who it is: it sends its
// Connection's API key in a header the Connection names.
const APIKeyHeader = "X-Api-Key"

// HMACScheme is what a signing proxy of your own may add instead: a hex HMAC-SHA256 of the body
// (Genesys itself does not sign what EventBridge delivers).
var HMACScheme = signature.HMACScheme{Header: "X-Genesys-Event-Signature", Encoding: signature.Hex}

// APIKey is the offline demos' API key; it only ever guards a loopback port.
const APIKey = "offline-demo-key"

// RunFunc is an example program without its process: arguments, environment and output are
// passed in, so that its tests can run it.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// Main runs run as the program called name, with the process's arguments, environment and
// standard output, and a context that Ctrl-C or SIGTERM cancels. When run fails it prints the
// error after name on standard error and exits with status 1.
func Main(name string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Flags returns the flag set of the program called name, which prints its usage to stdout, with
// the -serve flag every example has. Add the program's own flags, then call Parse.
func Flags(name string, stdout io.Writer) (flags *flag.FlagSet, serve *bool) {
	flags = flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(stdout)
	serve = flags.Bool("serve", false, "offline: keep serving after the demo, until Ctrl-C")
	return flags, serve
}

// Parse parses args. done is true when the program has nothing more to do: -h asked for the
// usage, which is printed (err is nil), or the arguments are wrong (err says how).
func Parse(flags *flag.FlagSet, args []string) (done bool, err error) {
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return true, err
	}
	return false, nil
}

// Verifier accepts whichever credentials are configured: apiKey (EVENTBRIDGE_API_KEY) in
// APIKeyHeader, secret (GENESYS_WEBHOOK_SECRET) as HMACScheme, or either. With neither it fails,
// because the intake never runs unauthenticated. A secret that is blank, or has white space
// around it, is an error, as such an API key is: a one-space key guards nothing, and a line break
// kept from a secret file makes every signature the proxy computes wrong, each post answered 401,
// which senders do not retry.
func Verifier(apiKey, secret string) (signature.Verifier, error) {
	var vs []signature.Verifier
	if apiKey != "" {
		v, err := signature.APIKey(APIKeyHeader, apiKey)
		if err != nil {
			return nil, fmt.Errorf("EVENTBRIDGE_API_KEY: %w", err)
		}
		vs = append(vs, v)
	}
	if secret != "" {
		switch trimmed := strings.TrimSpace(secret); {
		case trimmed == "":
			return nil, errors.New("GENESYS_WEBHOOK_SECRET: the secret is blank")
		case trimmed != secret:
			return nil, errors.New("GENESYS_WEBHOOK_SECRET: the secret has leading or trailing whitespace")
		}
		v, err := signature.HMAC(HMACScheme, secret)
		if err != nil {
			return nil, fmt.Errorf("GENESYS_WEBHOOK_SECRET: %w", err)
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, errors.New("set EVENTBRIDGE_API_KEY or GENESYS_WEBHOOK_SECRET: the intake never runs unauthenticated")
	}
	return signature.Any(vs...)
}

// CheckOffline returns nil when none of names (environment variables) is set, and otherwise an
// error from NotOffline for the first that is. The offline demo runs because missing (the setting
// that makes a program a service) is not set, and it writes only temporary files and listens
// only on loopback: a program that was given a place to write or listen was meant to be a
// service whose missing setting was forgotten, and must not put the demo's sample events in a
// real dead-letter queue, nor serve the demo's well-known key on a real address.
func CheckOffline(getenv func(string) string, missing string, names ...string) error {
	for _, name := range names {
		if getenv(name) != "" {
			return NotOffline(name, missing)
		}
	}
	return nil
}

// NotOffline is the error of a program that runs the offline demo, because missing is not set,
// but was given setting, which only a service uses.
func NotOffline(setting, missing string) error {
	return fmt.Errorf("%s is set but %s is not: set %s as well to run the service, or leave %s out to run the offline demo, which writes only temporary files and listens only on loopback",
		setting, missing, missing, setting)
}

// DLQDir returns the directory of the file dead-letter queue: dir (DLQ_DIR) when it is set;
// otherwise, offline, a new temporary directory named after the program, which remove deletes.
// A service without one is an error: it would have nowhere to keep what its sinks refuse; so is
// the offline demo with one (see CheckOffline). remove is never nil.
func DLQDir(dir string, offline bool, name string) (_ string, remove func(), err error) {
	remove = func() {}
	if offline && dir != "" {
		return "", remove, errors.New("DLQ_DIR: the offline demo keeps its dead letters in a temporary directory")
	}
	if dir != "" {
		return dir, remove, nil
	}
	if !offline {
		return "", remove, errors.New("DLQ_DIR: set a directory for the dead-letter queue")
	}
	if dir, err = os.MkdirTemp("", name+"-dlq-"); err != nil {
		return "", remove, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// SplitList splits the comma-separated list in the environment variable name, whose value is s,
// dropping blanks around and between the items. Unset (empty) is no list; a value that holds
// only blanks and commas is an error, so that a service whose setting went wrong does not run
// the offline demo instead.
func SplitList(name, s string) ([]string, error) {
	var list []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	if s != "" && len(list) == 0 {
		return nil, fmt.Errorf("%s is set but names nothing: list addresses separated by commas, or leave it unset to run the offline demo", name)
	}
	return list, nil
}

// Locked returns a writer that lets one Write through to w at a time: an example's in-process
// services, its intake and its demo print concurrently, and each line must stay whole.
func Locked(w io.Writer) io.Writer {
	return &lockedWriter{w: w}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
