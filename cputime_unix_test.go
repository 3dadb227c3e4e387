//go:build unix

package netron_test

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time, user and system, this process has used;
// benchmarks report it per operation: on a shared machine it moves less
// than wall-clock rates do.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
