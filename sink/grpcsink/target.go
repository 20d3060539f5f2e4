package grpcsink

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/resolver"
)

// staticScheme is the scheme of the resolver New installs, for its own connection only, when the
// target is a list of addresses.
const staticScheme = "fanbridge-static"

// roundRobin is the default service config of every connection New makes: it spreads calls over
// all the addresses a target resolves to (a static list, or every A record of a dns:/// name)
// instead of gRPC's default of sticking to the first.
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// parseTarget returns the addresses of a comma-separated list, or nil when target is a single gRPC
// target to pass to grpc.NewClient as it is.
func parseTarget(target string) ([]string, error) {
	if strings.TrimSpace(target) == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidTarget)
	}
	if !strings.Contains(target, ",") {
		return nil, nil
	}
	parts := strings.Split(target, ",")
	addrs := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("%w: empty address in list %q", ErrInvalidTarget, target)
		}
		if strings.Contains(p, "/") {
			return nil, fmt.Errorf("%w: %q: a list holds host:port addresses, not URIs", ErrInvalidTarget, p)
		}
		if _, _, err := net.SplitHostPort(p); err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrInvalidTarget, p, err)
		}
		addrs = append(addrs, p)
	}
	return addrs, nil
}

// staticResolver hands a fixed address list to the connection it is built for. It is its own
// builder; Build may run more than once (gRPC rebuilds the resolver when an idle channel wakes
// up), and each run reports the same list.
type staticResolver struct {
	addrs []string
}

func (r *staticResolver) Scheme() string { return staticScheme }

func (r *staticResolver) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	addrs := make([]resolver.Address, len(r.addrs))
	for i, a := range r.addrs {
		// ServerName makes TLS verify, and :authority name, each address's own host rather than
		// the list as a whole. The value comes from the caller's configuration, never from a peer.
		addrs[i] = resolver.Address{Addr: a, ServerName: a}
	}
	// An error here (a balancer that refuses the list) surfaces on the calls themselves, as
	// Unavailable with gRPC's explanation; Build has nothing better to do with it.
	_ = cc.UpdateState(resolver.State{Addresses: addrs})
	return nopResolver{}, nil
}

// nopResolver has nothing to re-resolve: the list is fixed.
type nopResolver struct{}

func (nopResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (nopResolver) Close()                                {}
