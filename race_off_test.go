//go:build !race

package netron_test

// raceEnabled: the race detector instruments every allocation, so the
// decode bombs are smaller under it.
const raceEnabled = false
