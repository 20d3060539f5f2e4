package genesys

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrUsage is wrapped by the errors RunProvisionCommand returns for missing or bad flags and
// environment variables.
var ErrUsage = errors.New("genesys: usage")

// RunProvisionCommand is the "provision" command line: it ensures the EventBridge integration
// (see EnsureEventBridgeIntegration) and prints the partner event source to link in AWS. Programs
// call it with os.Args[1:], os.Getenv, os.Stdout and os.Stderr; the ready-made service runs it as a
// subcommand.
//
// Every setting is a flag, and falls back to an environment variable when the flag is not given:
//
//	-region       GENESYS_REGION           AWS region name or Genesys host (required)
//	-client-id    GENESYS_CLIENT_ID        OAuth client id (required)
//	              GENESYS_CLIENT_SECRET    OAuth client secret (required; environment only)
//	-org-id       GENESYS_ORGANIZATION_ID  organization id, a UUID (read from the API when empty)
//	-aws-account  AWS_ACCOUNT_ID           12-digit AWS account (required)
//	-aws-region   AWS_REGION               AWS region of the event source (required)
//	-suffix       GENESYS_EVENT_SOURCE_SUFFIX  event source suffix (required)
//	-topics       GENESYS_EVENTBRIDGE_TOPICS   comma-separated topic filters (required)
//	-name         GENESYS_INTEGRATION_NAME integration name (default "fanbridge")
//	-notes, -replace, -timeout, -api-url (GENESYS_API_URL), -token-url (GENESYS_TOKEN_URL)
//
// The secret is read from the environment only, so that it never shows in a process listing, and
// it is never printed. Environment values are trimmed of surrounding white space, except the
// credentials: a client id or secret with white space around it (often the line break a secret
// file ends with), from the environment or -client-id, is a usage error naming the variable or
// flag, never the value, rather than a token request Genesys refuses with a bare 401
// invalid_client. The organization id is taken in either case and printed in lower case, as
// Genesys writes it in the partner event source; anything but a UUID is a usage error, so that no
// name AWS cannot find is printed.
//
// It returns an error wrapping ErrUsage for a bad flag or setting (and for -h, wrapping
// flag.ErrHelp too, which callers usually treat as success), and an error when the integration
// ends in Genesys' ERROR state: it is printed, but Genesys could not start it, so a script must
// not take the run for a success.
func RunProvisionCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		region     = fs.String("region", "", "Genesys Cloud region: AWS region name (us-east-1) or API host; env GENESYS_REGION")
		clientID   = fs.String("client-id", "", "OAuth client id (client credentials grant); env GENESYS_CLIENT_ID")
		orgID      = fs.String("org-id", "", "Genesys organization id, a UUID, printed in lower case as Genesys writes it; read from /api/v2/organizations/me when empty; env GENESYS_ORGANIZATION_ID")
		awsAccount = fs.String("aws-account", "", "12-digit AWS account that receives the partner event source; env AWS_ACCOUNT_ID")
		awsRegion  = fs.String("aws-region", "", "AWS region of the partner event source; env AWS_REGION")
		suffix     = fs.String("suffix", "", "event source suffix, at most 64 of [A-Za-z0-9._-]; env GENESYS_EVENT_SOURCE_SUFFIX")
		topics     = fs.String("topics", "", "comma-separated EventBridge topic filters, such as v2.users.{id}.presence; env GENESYS_EVENTBRIDGE_TOPICS")
		name       = fs.String("name", "", `integration name; env GENESYS_INTEGRATION_NAME (default "fanbridge")`)
		notes      = fs.String("notes", "Managed by fanbridge", "notes shown in the Genesys Cloud admin UI")
		replace    = fs.Bool("replace", false, "delete and re-create an integration whose AWS account, region or suffix differ")
		timeout    = fs.Duration("timeout", 10*time.Minute, "overall time limit (room for the 5-minute wait after a creation with an unclear outcome)")
		apiURL     = fs.String("api-url", "", "override the API base URL (proxies, tests); env GENESYS_API_URL")
		tokenURL   = fs.String("token-url", "", "override the OAuth token URL; env GENESYS_TOKEN_URL")
	)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: provision [flags]\n\nEnsures the Genesys Cloud Amazon EventBridge integration and prints the partner event source.\nThe OAuth client secret is read from GENESYS_CLIENT_SECRET only.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	fromEnv := func(p *string, key string) {
		if *p == "" {
			*p = strings.TrimSpace(getenv(key))
		}
	}
	clientIDFrom := "-client-id"
	if *clientID == "" {
		// Taken as it is, as the secret is: see the check below.
		*clientID, clientIDFrom = getenv("GENESYS_CLIENT_ID"), "GENESYS_CLIENT_ID"
	}
	fromEnv(region, "GENESYS_REGION")
	fromEnv(orgID, "GENESYS_ORGANIZATION_ID")
	fromEnv(awsAccount, "AWS_ACCOUNT_ID")
	fromEnv(awsRegion, "AWS_REGION")
	fromEnv(suffix, "GENESYS_EVENT_SOURCE_SUFFIX")
	fromEnv(topics, "GENESYS_EVENTBRIDGE_TOPICS")
	fromEnv(name, "GENESYS_INTEGRATION_NAME")
	fromEnv(apiURL, "GENESYS_API_URL")
	fromEnv(tokenURL, "GENESYS_TOKEN_URL")
	if *name == "" {
		*name = "fanbridge"
	}
	secret := getenv("GENESYS_CLIENT_SECRET")

	var missing []string
	for _, m := range []struct{ v, what string }{
		{*region, "-region or GENESYS_REGION"}, {strings.TrimSpace(*clientID), "-client-id or GENESYS_CLIENT_ID"},
		{strings.TrimSpace(secret), "GENESYS_CLIENT_SECRET"},
	} {
		if m.v == "" {
			missing = append(missing, m.what)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrUsage, strings.Join(missing, ", "))
	}
	// A credential is not trimmed: the line break a secret file ends with would otherwise reach
	// the token request and come back as a bare 401 invalid_client. It is refused instead, naming
	// where it came from and never the value.
	for _, c := range []struct{ v, from string }{{*clientID, clientIDFrom}, {secret, "GENESYS_CLIENT_SECRET"}} {
		if strings.TrimSpace(c.v) != c.v {
			return fmt.Errorf("%w: %s has leading or trailing white space (a line break kept from a file?); remove it", ErrUsage, c.from)
		}
	}
	r, err := ParseRegion(*region)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	var opts []Option
	if *apiURL != "" {
		opts = append(opts, WithBaseURL(*apiURL))
	}
	if *tokenURL != "" {
		opts = append(opts, WithTokenURL(*tokenURL))
	}
	client, err := NewClient(r, *clientID, secret, opts...)
	if err != nil {
		return err
	}
	defer client.Close()
	spec := EventBridgeSpec{
		Name:              *name,
		AWSAccountID:      *awsAccount,
		AWSRegion:         *awsRegion,
		EventSourceSuffix: *suffix,
		Topics:            splitList(*topics),
		Notes:             *notes,
		OrganizationID:    *orgID,
		Replace:           *replace,
	}
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	res, err := client.EnsureEventBridgeIntegration(ctx, spec)
	if err != nil {
		return err
	}
	printResult(stdout, res, spec)
	if rs := res.Integration.ReportedState; rs != nil && rs.Code == ReportedError {
		// The integration exists and is configured, but Genesys could not start it: a script
		// must not take that for success.
		return fmt.Errorf("genesys: integration %s reports state %s; see the message above, fix it, and run again", res.Integration.ID, ReportedError)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func printResult(w io.Writer, res *EventBridgeResult, spec EventBridgeSpec) {
	var did []string
	switch {
	case res.Replaced:
		did = append(did, "replaced")
	case res.Created:
		did = append(did, "created")
	case res.DuplicateDeleted:
		did = append(did, "created at the same time by another run (this run's duplicate deleted)")
	}
	if res.ConfigUpdated {
		did = append(did, "configured")
	}
	if res.Enabled {
		did = append(did, "enabled")
	}
	if len(did) == 0 {
		did = append(did, "unchanged")
	}
	state := "not reported yet"
	if rs := res.Integration.ReportedState; rs != nil && rs.Code != "" {
		state = clean(rs.Code, 128)
		if rs.Detail != nil && rs.Detail.Message != "" {
			state += ": " + clean(rs.Detail.Message, 200)
		}
	}
	fmt.Fprintf(w, "integration %s %q: %s (reported state %s)\n", res.Integration.ID, res.Integration.Name, strings.Join(did, ", "), state)
	if rs := res.Integration.ReportedState; rs != nil && rs.Code == ReportedError {
		return // nothing to do in AWS until Genesys can start it
	}
	fmt.Fprintf(w, "topics: %s\n", strings.Join(spec.Topics, ", "))
	fmt.Fprintf(w, "partner event source: %s\n", res.PartnerEventSource)
	fmt.Fprintf(w, "next, in AWS account %s: associate it with an event bus, for example\n", spec.AWSAccountID)
	fmt.Fprintf(w, "  aws events create-event-bus --region %s --name %s --event-source-name %s\n",
		spec.AWSRegion, res.PartnerEventSource, res.PartnerEventSource)
}
