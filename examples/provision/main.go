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
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/fanbridge/fanbridge/genesys"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := genesys.RunProvisionCommand(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "provision:", err)
		if errors.Is(err, genesys.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
