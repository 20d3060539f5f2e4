// Command provision creates or updates the Genesys Cloud Amazon EventBridge integration that feeds
// fanbridge, and prints the AWS partner event source to associate with an event bus.
//
//	GENESYS_REGION=eu-west-1 GENESYS_CLIENT_ID=... GENESYS_CLIENT_SECRET=... \
//	go run ./examples/provision -aws-account 123456789012 -aws-region eu-west-1 \
//	    -suffix fanbridge-prod -topics 'v2.users.{id}.presence,v2.detail.events.conversation.{id}.customer.end'
//
// Running it again changes nothing when everything is already in place.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/fanbridge/fanbridge/genesys"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the program without its process: arguments, environment and output are passed in, and
// the exit code comes back (2 for a usage error, 1 for any other failure), so that a test can run
// it against a fake Genesys Cloud.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if err := genesys.RunProvisionCommand(ctx, args, getenv, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // -h printed the usage, as asked
		}
		fmt.Fprintln(stderr, "provision:", err)
		if errors.Is(err, genesys.ErrUsage) {
			return 2
		}
		return 1
	}
	return 0
}
