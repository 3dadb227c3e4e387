// Package apicheck holds the test that keeps the public API of the module
// free of plumbing: no exported identifier of a public package may mention a
// type of an internal/ package, the programs under examples/ and cmd/ (the
// module's own users) import no internal/ package, the exported API is
// recorded in testdata/api.golden so that every change to it shows in
// review, and the import graph follows the layers of DESIGN.md §3.
//
// After a reviewed change to the API, rewrite the golden file with
//
//	go test ./internal/apicheck -update
package apicheck
