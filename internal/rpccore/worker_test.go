package rpccore

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateSvc's Wait returns once the gate opens.
type gateSvc struct {
	entered chan struct{}
	gate    chan struct{}
}

func (g *gateSvc) Wait() int {
	g.entered <- struct{}{}
	<-g.gate
	return 1
}

// workers counts the server's worker goroutines.
func workers() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "rpccore.(*Server).worker(")
}

// waitWorkers waits up to 30 s for the server's workers to exit.
func waitWorkers(t *testing.T) {
	t.Helper()
	start := time.Now()
	for workers() > 0 {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("%d workers still there after 30 s", workers())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Workers that a burst of requests started exit once idle for
// workerIdle, not before, and not while they serve requests.
func TestIdleWorkersExit(t *testing.T) {
	defer func(d time.Duration) { workerIdle = d }(workerIdle)
	workerIdle = 200 * time.Millisecond
	g := &gateSvc{entered: make(chan struct{}), gate: make(chan struct{})}
	svc := servePair(t, "gate@1.0.0", g)
	waitWorkers(t) // the one that answered the query for the service
	const burst = 4
	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() {
			if _, err := svc.Call(context.Background(), "wait"); err != nil {
				t.Error(err)
			}
		})
	}
	for range burst {
		select {
		case <-g.entered:
		case <-time.After(30 * time.Second):
			close(g.gate)
			t.Fatal("the requests did not all start")
		}
	}
	if n := workers(); n != burst {
		t.Fatalf("%d workers for %d requests in flight", n, burst)
	}
	// Requests that run for several idle periods keep their workers.
	time.Sleep(3 * workerIdle)
	if n := workers(); n != burst {
		t.Fatalf("%d workers left while %d requests run", n, burst)
	}
	// The requests end after the gate opens: no worker may exit before a
	// whole idle time has passed since.
	opened := time.Now()
	close(g.gate)
	wg.Wait()
	waitWorkers(t)
	if d := time.Since(opened); d < workerIdle {
		t.Fatalf("the workers exited %v after their requests, before the idle time %v", d, workerIdle)
	}
}
