//go:build race

package stream_test

// raceEnabled: the race detector slows everything down, timing bounds
// get slack.
const raceEnabled = true
