package server

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// Dial returns the gateway's connection to one service (name: auth,
// conversation or message) at addrs, as config.ParseAddrs reads them, with
// DialOptions and then opts.
//
// One address is a gRPC target dialed as it is: grpc-go resolves it (a
// dns:/// name of a headless Service gives every replica's address) and the
// round_robin policy of DialOptions balances over what it resolves to.
//
// Several addresses (host:port each) are the replicas of the service: a
// manual resolver of grpc-go hands them all to the connection once, under
// the target "chat-<name>:///<name>", and round_robin sends each call to the
// next replica that is connected, so a replica that is down or restarting is
// skipped until it is back. The list is static: it is never re-resolved.
func Dial(name string, addrs []string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	all := append(DialOptions(), opts...)
	switch len(addrs) {
	case 0:
		return nil, fmt.Errorf("%s: no address", name)
	case 1:
		return grpc.NewClient(addrs[0], all...)
	}
	r := manual.NewBuilderWithScheme("chat-" + name)
	state := resolver.State{Endpoints: make([]resolver.Endpoint, 0, len(addrs))}
	for _, a := range addrs {
		state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
	}
	// Kept by the resolver, which hands it to the connection again whenever
	// the connection leaves idle mode and rebuilds it.
	r.InitialState(state)
	return grpc.NewClient(r.Scheme()+":///"+name, append(all, grpc.WithResolvers(r))...)
}
