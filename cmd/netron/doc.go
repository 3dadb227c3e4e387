// Command netron is the command-line tool of Netron for Go.
//
//	netron demo                                   several nodes in this process: discovery, calls, events, a stream
//	netron serve --config app.yaml                run a node (YAML or JSON, then NETRON_… variables, then flags)
//	netron call ws://host:9000/calculator add 2 3 call a method, print the JSON result (--stream for streams)
//	netron services --node ws://host:9000         list the services a node offers
//	netron peers --node ws://host:9000            list the peers a node is connected to
//	netron watch --node ws://host:9000 [event …]  print the node's events as they happen
//	netron nodes --discovery redis://host:6379    list the nodes discovery knows
//
// The commands that talk to a node connect to --node (default $NETRON_NODE,
// else ws://127.0.0.1:9000) as a client node of their own, or, with
// --discovery (a redis:// URL or a configuration file), to the node that
// discovery lists for the service called or under the id --node gives. Every command has
// --help. Exit codes: 0 success, 1 a runtime error (cannot connect, the call
// failed, the port is taken, the node went away), 2 a usage error or an
// invalid configuration (the message names the field).
//
// docs/cli.md describes the commands, the configuration and package app,
// on which serve and demo are built.
package main
