// Package routerexample_test shows Watermill's Router, its Recoverer and
// Retry middleware and its Prometheus metrics component working on a
// Netron node's events and calls. It lives in the bench module so that
// the root module does not depend on Prometheus.
package routerexample_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
)

type Calculator struct{}

func (Calculator) Add(a, b float64) float64 { return a + b }

// setup starts a node with a calculator and a Router on a Scope of its
// bus, with Recoverer, Retry and Prometheus metrics. Handlers:
//
//   - "orders": on every "order:created" event, a handler that fails its
//     first attempt and panics in its second: Recoverer turns the panic
//     into an error, Retry tries again; the third attempt turns the event
//     into a call of calculator.add, published on TopicCalls;
//   - "replies": reads the replies of those calls;
//   - "calls": observes the calls peers make.
func setup(t tb) (n *netron.Node, reg *prometheus.Registry, attempts *atomic.Int32, sums chan float64) {
	ctx := context.Background()
	n, err := netron.New(netron.Config{ID: "router-node"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(context.Background()) })
	if err := n.Expose("calculator@1.0.0", Calculator{}); err != nil {
		t.Fatal(err)
	}

	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	reg = prometheus.NewRegistry()
	metrics.NewPrometheusMetricsBuilder(reg, "netron", "router").AddPrometheusRouterMetrics(r)
	r.AddMiddleware(
		middleware.Retry{MaxRetries: 3, InitialInterval: time.Millisecond, Logger: watermill.NopLogger{}}.Middleware,
		middleware.Recoverer,
	)
	// Block: the example must see every event and reply. A tap that may
	// lose messages under load keeps the default Scope.
	sc := n.Bus().Scope(bus.WithPolicy(bus.Block))

	attempts = new(atomic.Int32)
	r.AddHandler("orders", netron.TopicEvents, sc, netron.TopicCalls, sc, func(m *message.Message) ([]*message.Message, error) {
		if m.Metadata.Get(netron.MetaEvent) != "order:created" {
			return nil, nil
		}
		switch attempts.Add(1) {
		case 1:
			return nil, errors.New("transient failure")
		case 2:
			panic("handler bug")
		}
		var qty float64
		if err := netron.DecodeArg(m, 1, &qty); err != nil {
			return nil, err
		}
		call, err := netron.NewCallMessage("calculator@1.0.0", "add", qty, 1)
		if err != nil {
			return nil, err
		}
		return []*message.Message{call}, nil
	})
	sums = make(chan float64, 1)
	r.AddNoPublisherHandler("replies", netron.TopicReplies, sc, func(m *message.Message) error {
		var sum float64
		if err := netron.DecodeResult(m, &sum); err != nil {
			return err
		}
		sums <- sum
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	<-r.Running()
	t.Cleanup(func() {
		r.Close()
		<-done
	})
	return n, reg, attempts, sums
}

func TestRouterMiddlewareOnNode(t *testing.T) {
	n, reg, attempts, sums := setup(t)
	if err := n.Emit(context.Background(), "order:created", "A-17", 41); err != nil {
		t.Fatal(err)
	}
	select {
	case sum := <-sums:
		if sum != 42 {
			t.Fatalf("sum %v", sum)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no reply within 30 s")
	}
	if a := attempts.Load(); a != 3 {
		t.Fatalf("%d attempts, want 3 (a failure, a recovered panic, a success)", a)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	all := strings.Join(names, " ")
	if !strings.Contains(all, "netron_router_handler_execution_time_seconds") {
		t.Fatalf("no handler metrics in %s", all)
	}
}

// tb is what setup needs of a testing.TB.
type tb interface {
	Fatal(args ...any)
	Cleanup(func())
}

// exampleTB is a tb for the example: Fatal panics, Cleanup stacks.
type exampleTB struct{ cleanups []func() }

func (e *exampleTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
func (e *exampleTB) Cleanup(f func())  { e.cleanups = append(e.cleanups, f) }
func (e *exampleTB) close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}

// An event becomes a call after a failure and a recovered panic.
func Example() {
	t := &exampleTB{}
	defer t.close()
	n, _, attempts, sums := setup(t)
	_ = n.Emit(context.Background(), "order:created", "A-17", 41)
	fmt.Println(<-sums, attempts.Load())
	// Output: 42 3
}
