package rpccore

import (
	"sync"
	"testing"
)

type echoSvc struct{}

func (echoSvc) Echo(s string) string { return s }

// Watchers see the changes in the order they were made: for one service,
// exposed and unexposed alternate, whatever the goroutines racing.
func TestRegistryChangesInOrder(t *testing.T) {
	r := NewRegistry("node")
	var mu sync.Mutex
	var seq []bool
	r.OnChange(func(c ServiceChange) {
		mu.Lock()
		seq = append(seq, c.Exposed)
		mu.Unlock()
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				_, _ = r.Expose("svc@1.0.0", echoSvc{})
				_ = r.Unexpose("svc@1.0.0")
			}
		})
	}
	wg.Wait()
	for i, exposed := range seq {
		if exposed != (i%2 == 0) {
			t.Fatalf("change %d of %d: exposed=%v out of order", i, len(seq), exposed)
		}
	}
	if len(seq) == 0 || len(seq)%2 != 0 {
		t.Fatalf("%d changes", len(seq))
	}
}
