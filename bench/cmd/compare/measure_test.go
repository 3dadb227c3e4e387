package main

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// The one-way figures promise every system the same delivery guarantee:
// in order, nothing lost. A system that loses messages fails the measure
// (instead of hanging it on credits that never come back), and one that
// reorders them is reported.

func TestOneWayLostMessagesFail(t *testing.T) {
	for _, c := range []struct {
		name string
		lose func(seq int64) bool
	}{
		{"all", func(int64) bool { return true }},
		{"one in 100", func(seq int64) bool { return seq%100 == 99 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWindow(windowSize)
				_, err := measureOneWay(time.Second, w, func(seq int64) error {
					if !c.lose(seq) {
						w.got(seq)
					}
					return nil
				})
				if !errors.Is(err, errLost) {
					t.Fatalf("measureOneWay = %v, want errLost", err)
				}
			})
		})
	}
}

func TestOneWayOrder(t *testing.T) {
	for _, c := range []struct {
		name      string
		deliver   func(seq int64) int64
		wantNoted bool
	}{
		{"in order", func(seq int64) int64 { return seq }, false},
		{"pairs swapped", func(seq int64) int64 { return seq ^ 1 }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWindow(windowSize)
			r, err := measureOneWay(20*time.Millisecond, w, func(seq int64) error {
				w.got(c.deliver(seq))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if (r.note != "") != c.wantNoted {
				t.Fatalf("note %q after %d messages", r.note, r.count)
			}
		})
	}
}
