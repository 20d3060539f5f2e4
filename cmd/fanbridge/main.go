package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/hangup"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: fanbridge [command] [flags]

commands:
  (none)      run the service: with -config FILE, or the demo without it
  validate    check a configuration file
  dlq         list, show and redrive dead-letter entries
  pattern     test an EventBridge event pattern against an event
  provision   create or update the Genesys Cloud EventBridge integration
  demo        demo helpers: send the embedded samples, print a sample or the demo configuration
  version     print the version

Run "fanbridge COMMAND -h" for the flags of a command, and "fanbridge -h" for the service's.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest := args[0], args[1:]
		if cmd != "serve" && cmd != "run" {
			// Only the service reloads on SIGHUP; the other commands end on it, as programs do
			// when their terminal goes away.
			hangup.Release()
		}
		switch cmd {
		case "validate":
			return cmdValidate(rest, stdout, stderr)
		case "dlq":
			return cmdDLQ(rest, stdout, stderr)
		case "pattern":
			return cmdPattern(rest, stdout, stderr)
		case "provision":
			return cmdProvision(rest, stdout, stderr)
		case "demo":
			return cmdDemo(rest, stdout, stderr)
		case "version", "help":
			help := len(rest) == 1 && (rest[0] == "-h" || rest[0] == "-help" || rest[0] == "--help")
			if len(rest) > 0 && !help {
				fmt.Fprintf(stderr, "fanbridge %s: unexpected argument %q\n\n%s", cmd, rest[0], usage)
				return exitUsage
			}
			if cmd == "version" && !help {
				fmt.Fprintln(stdout, versionString())
			} else {
				fmt.Fprint(stdout, usage)
			}
			return exitOK
		case "serve", "run":
			args = rest
		default:
			fmt.Fprintf(stderr, "fanbridge: unknown command %q\n\n%s", cmd, usage)
			return exitUsage
		}
	}
	return cmdServe(args, stdout, stderr)
}

func versionString() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	return fmt.Sprintf("fanbridge %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newFlagSet returns the flag set of a command: errors go to stderr, and -h prints usage followed
// by the flags and their defaults.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses flags that may come before, between or after positional arguments, and
// reports -h as exitOK.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, 0, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// listFlag is a repeatable flag that also splits on commas.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}
