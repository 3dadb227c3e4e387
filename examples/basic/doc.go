// Command basic is the seed's first example, "basic usage and
// configuration", in Go: an application (package app) configured by a
// YAML file and NETRON_… environment variables, a module that reaches the
// Netron through the application's accessor and reads its own section of
// the configuration, a second application whose module gets the Netron as
// a constructor argument and connects to the first, and the startup and
// shutdown sequences as they happen.
//
//	go run ./examples/basic
//	NETRON_ID=renamed go run ./examples/basic
package main
