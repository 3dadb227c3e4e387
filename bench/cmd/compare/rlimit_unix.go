//go:build unix

package main

import "syscall"

// raiseFileLimit raises RLIMIT_NOFILE to at least want descriptors when it
// can (the hard limit too, for root), and otherwise as far as the hard
// limit allows.
func raiseFileLimit(want int) {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil || lim.Cur >= uint64(want) {
		return
	}
	if lim.Max < uint64(want) {
		up := syscall.Rlimit{Cur: uint64(want), Max: uint64(want)}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return
		}
	}
	lim.Cur = min(uint64(want), lim.Max)
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
