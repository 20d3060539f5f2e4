package genesys_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
)

func ExampleNewClient() {
	// A local fake Genesys Cloud stands in for the real one; with the real one, only the region
	// and the credentials are needed.
	srv := genesystest.NewServer()
	defer srv.Close()

	client, err := genesys.NewClient(genesys.EUWest1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
		genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL()))
	if err != nil {
		panic(err)
	}
	defer client.Close() // releases the connections it keeps for reuse
	org, err := client.Organization(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Println(org.ID)
	fmt.Println(genesys.EUWest1.LoginHost())
	// Output:
	// 32aa07aa-db1b-4987-abd0-9483601ec29d
	// login.mypurecloud.ie
}

func ExampleClient_EnsureEventBridgeIntegration() {
	srv := genesystest.NewServer()
	defer srv.Close()
	client, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
		genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL()))
	if err != nil {
		panic(err)
	}
	defer client.Close()
	spec := genesys.EventBridgeSpec{
		Name:              "fanbridge",
		AWSAccountID:      "123456789012",
		AWSRegion:         "us-east-1",
		EventSourceSuffix: "contact-centre",
		Topics:            []string{"v2.detail.events.conversation.{id}.customer.end", "v2.users.{id}.presence"},
	}
	ctx := context.Background()
	for range 2 {
		res, err := client.EnsureEventBridgeIntegration(ctx, spec)
		if err != nil {
			panic(err)
		}
		fmt.Println("changed:", res.Changed(), "state:", res.Integration.ReportedState.Code)
		fmt.Println(res.PartnerEventSource)
	}

	spec.Topics = []string{"v2.users.{id}.mood"}
	_, err = client.EnsureEventBridgeIntegration(ctx, spec)
	fmt.Println(errors.Is(err, genesys.ErrUnknownTopic), err)
	// Output:
	// changed: true state: ACTIVE
	// aws.partner/genesys.com/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/contact-centre
	// changed: false state: ACTIVE
	// aws.partner/genesys.com/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/contact-centre
	// true genesys: unknown topic: "v2.users.{id}.mood" is not an available topic
}

func ExampleParseRegion() {
	for _, s := range []string{"ap-southeast-2", "mypurecloud.de", "https://api.usw2.pure.cloud/"} {
		r, err := genesys.ParseRegion(s)
		if err != nil {
			panic(err)
		}
		fmt.Println(r, r.AWSRegion())
	}
	// Output:
	// api.mypurecloud.com.au ap-southeast-2
	// api.mypurecloud.de eu-central-1
	// api.usw2.pure.cloud us-west-2
}
