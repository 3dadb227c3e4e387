// Package docstest holds the docs test: it runs the shell blocks of
// README.md, docs/*.md and examples/*/README.md and checks that their Go blocks are code that
// compiles, so the documentation cannot drift from what the project does.
//
// The conventions for writing blocks (which run, which do not, how a
// server is started, how an output is checked) are in docs/testing.md.
package docstest
