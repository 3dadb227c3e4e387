//go:build race

package netron_test

// raceEnabled: the race detector slows everything down, timing bounds
// get slack.
const raceEnabled = true
