// Command rpc is the seed's second example, "RPC service implementation",
// in Go: the calculator service of the seed, grown to show what a service
// can do — context, errors with codes, structs and slices, deadlines,
// versions side by side — exposed by an application module and called
// from another node, and locally without the network.
//
//	go run ./examples/rpc
package main
