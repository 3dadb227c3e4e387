package app_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
	"github.com/netron-go/netron/rpc"
)

// recorder keeps the order of what happened: module calls and the
// application's log messages. As a slog.Handler with a Flush method it
// also records the logger's flush.
type recorder struct {
	mu     sync.Mutex
	events []string
	attrs  []slog.Attr
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	msg := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "module" {
			msg += " " + a.Value.String()
		}
		return true
	})
	if strings.HasPrefix(msg, "app: ") {
		r.add(msg)
	}
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }
func (r *recorder) Flush() error                       { r.add("logger flushed"); return nil }

// module records its Start and Stop, and can fail or block.
type module struct {
	name     string
	rec      *recorder
	startErr error
	onStart  func() error
	onStop   func(ctx context.Context) error
}

func (m *module) Name() string { return m.name }

func (m *module) Start(context.Context) error {
	m.rec.add("start " + m.name)
	if m.onStart != nil {
		if err := m.onStart(); err != nil {
			return err
		}
	}
	return m.startErr
}

func (m *module) Stop(ctx context.Context) error {
	m.rec.add("stop " + m.name)
	if m.onStop != nil {
		return m.onStop(ctx)
	}
	return nil
}

func localNetron(id string) netron.Config {
	return netron.Config{ID: id, Host: "127.0.0.1", Server: true}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartupAndShutdownOrder(t *testing.T) {
	ctx := ctxT(t)
	rec := &recorder{}
	a, err := app.New(app.WithNetronConfig(localNetron("order")), app.WithLogger(slog.New(rec)))
	if err != nil {
		t.Fatal(err)
	}
	node, err := a.Netron() // constructor injection: accessed before Start
	if err != nil {
		t.Fatal(err)
	}
	listening := func() bool {
		c, err := net.Dial("tcp", node.Addr().String())
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	first := &module{name: "first", rec: rec, onStart: func() error {
		if node.Addr() != nil {
			t.Error("the Netron listens before the modules have started")
		}
		return nil
	}}
	second := &module{name: "second", rec: rec, onStop: func(context.Context) error {
		if !listening() {
			t.Error("the Netron stopped before the modules")
		}
		return nil
	}}
	if err := a.Register(first, second); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-a.Ready()
	if !listening() {
		t.Fatal("the Netron does not listen after Start")
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	<-a.Done()
	if node.Addr() != nil && listening() {
		t.Error("the Netron still listens after Stop")
	}
	want := []string{
		"app: netron registered (created on first access)",
		"app: netron created",
		"app: starting",
		"start first", "app: module started first",
		"start second", "app: module started second",
		"app: netron started",
		"app: ready",
		"app: stopping",
		"stop second", "app: module stopped second",
		"stop first", "app: module stopped first",
		"app: netron stopped",
		"app: stopped",
		"logger flushed",
	}
	if got := rec.list(); !slices.Equal(got, want) {
		t.Errorf("order:\n got %q\nwant %q", got, want)
	}
	if err := a.Start(ctx); !errors.Is(err, app.ErrStopped) {
		t.Errorf("Start after Stop = %v, want ErrStopped", err)
	}
	if _, err := a.Netron(); !errors.Is(err, app.ErrStopped) {
		t.Errorf("Netron after Stop = %v, want ErrStopped", err)
	}
	if err := a.Stop(ctx); err != nil {
		t.Errorf("second Stop = %v", err)
	}
}

func TestNetronNotCreatedWhenNeverAccessed(t *testing.T) {
	ctx := ctxT(t)
	rec := &recorder{}
	var created atomic.Int32
	a, err := app.New(
		app.WithNetronConfig(localNetron("lazy")),
		app.WithLogger(slog.New(rec)),
		app.WithNetronFactory(func(c netron.Config) (*netron.Node, error) {
			created.Add(1)
			return netron.New(c)
		}),
		app.WithModules(&module{name: "only", rec: rec}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := created.Load(); n != 0 || a.NetronCreated() {
		t.Errorf("Netron created %d times without being accessed", n)
	}
	got := rec.list()
	for _, e := range got {
		if strings.Contains(e, "netron") && !strings.Contains(e, "not created") && !strings.Contains(e, "registered") {
			t.Errorf("unexpected step %q", e)
		}
	}
	if !slices.Contains(got, "app: netron not accessed; not created") {
		t.Errorf("steps %q", got)
	}
}

func TestNetronCreatedOnceOnFirstAccess(t *testing.T) {
	ctx := ctxT(t)
	var created atomic.Int32
	a, err := app.New(
		app.WithNetronConfig(localNetron("once")),
		app.WithLogger(slog.New(slog.DiscardHandler)),
		app.WithNetronFactory(func(c netron.Config) (*netron.Node, error) {
			created.Add(1)
			return netron.New(c)
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop(ctx)
	if a.NetronCreated() {
		t.Fatal("created before access")
	}
	// Accessed while running: created and started at once, by one caller.
	var wg sync.WaitGroup
	nodes := make([]*netron.Node, 8)
	for i := range nodes {
		wg.Go(func() {
			n, err := a.Netron()
			if err != nil {
				t.Error(err)
			}
			nodes[i] = n
		})
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Fatalf("created %d times", created.Load())
	}
	for _, n := range nodes {
		if n != nodes[0] {
			t.Fatal("different nodes")
		}
	}
	if nodes[0].URL() == "" {
		t.Fatal("a Netron accessed while running was not started")
	}
}

type Calculator struct{}

func (Calculator) Add(a, b float64) float64 { return a + b }

func TestExposeModule(t *testing.T) {
	ctx := ctxT(t)
	a, err := app.New(app.WithNetronConfig(localNetron("calc")), app.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Register(app.Expose(a, "calculator@1.0.0", Calculator{})); err != nil {
		t.Fatal(err)
	}
	if a.NetronCreated() {
		t.Fatal("Expose created the Netron before Start")
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop(ctx)
	node, _ := a.Netron()
	client, err := netron.New(netron.Config{ID: "client"})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Stop(ctx)
	p, err := client.Connect(ctx, node.URL())
	if err != nil {
		t.Fatal(err)
	}
	calc, err := p.Service(ctx, "calculator")
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := rpc.Call[float64](ctx, calc, "add", 2, 3); err != nil || sum != 5 {
		t.Fatalf("add = %v, %v", sum, err)
	}
	// The built-in task lists the client.
	res, err := p.RunTask(ctx, app.TaskListPeers)
	if err != nil {
		t.Fatal(err)
	}
	var peers []app.PeerInfo
	if err := res.Decode(&peers); err != nil {
		t.Fatal(err)
	}
	if want := []app.PeerInfo{{ID: "client", Direction: "in", Go: true}}; !slices.Equal(peers, want) {
		t.Errorf("list_peers = %+v, want %+v", peers, want)
	}
}

// busyPort returns the address of a listener that holds a port.
func busyPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func TestNetronBindFailureFailsStart(t *testing.T) {
	ctx := ctxT(t)
	rec := &recorder{}
	a, err := app.New(
		app.WithNetronConfig(netron.Config{ID: "busy", Host: "127.0.0.1", Port: busyPort(t)}),
		app.WithLogger(slog.New(rec)),
	)
	if err != nil {
		t.Fatal(err)
	}
	a.Register(&module{name: "a", rec: rec}, app.Expose(a, "calculator@1.0.0", Calculator{}), &module{name: "b", rec: rec})
	err = a.Start(ctx)
	if !errors.Is(err, app.ErrNetronStart) {
		t.Fatalf("Start = %v, want ErrNetronStart", err)
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error does not say why: %v", err)
	}
	select {
	case <-a.Ready():
		t.Error("ready after a failed start")
	default:
	}
	<-a.Done()
	want := []string{
		"app: netron registered (created on first access)",
		"app: starting",
		"start a", "app: module started a",
		"app: module started expose calculator@1.0.0",
		"start b", "app: module started b",
		"app: netron failed to start",
		"app: stopping",
		"stop b", "app: module stopped b",
		"app: module stopped expose calculator@1.0.0",
		"stop a", "app: module stopped a",
		"app: netron stopped",
		"app: stopped",
		"logger flushed",
	}
	got := slices.DeleteFunc(rec.list(), func(s string) bool { return s == "app: netron created" })
	if !slices.Equal(got, want) {
		t.Errorf("order:\n got %q\nwant %q", got, want)
	}
	if err := a.Start(ctx); !errors.Is(err, app.ErrStopped) {
		t.Errorf("restart = %v", err)
	}
}

func TestTolerateNetronFailure(t *testing.T) {
	ctx := ctxT(t)
	a, err := app.New(
		app.WithNetronConfig(netron.Config{ID: "busy", Host: "127.0.0.1", Port: busyPort(t)}),
		app.WithLogger(slog.New(slog.DiscardHandler)),
		app.TolerateNetronFailure(),
	)
	if err != nil {
		t.Fatal(err)
	}
	node, err := a.Netron()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatalf("Start = %v, want the failure tolerated", err)
	}
	if !errors.Is(a.NetronErr(), app.ErrNetronStart) {
		t.Errorf("NetronErr = %v", a.NetronErr())
	}
	if node.URL() != "" {
		t.Error("the Netron listens")
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestModuleStartFailureRollsBack(t *testing.T) {
	ctx := ctxT(t)
	rec := &recorder{}
	boom := errors.New("boom")
	a, err := app.New(app.WithNetronConfig(localNetron("rollback")), app.WithLogger(slog.New(rec)))
	if err != nil {
		t.Fatal(err)
	}
	a.Register(
		app.Expose(a, "calculator@1.0.0", Calculator{}),
		&module{name: "ok", rec: rec},
		&module{name: "bad", rec: rec, startErr: boom},
		&module{name: "never", rec: rec},
	)
	if err := a.Start(ctx); !errors.Is(err, boom) || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("Start = %v, want boom naming the module", err)
	}
	<-a.Done()
	got := rec.list()
	for _, bad := range []string{"start never", "stop bad", "stop never", "app: netron started"} {
		if slices.Contains(got, bad) {
			t.Errorf("%q happened: %q", bad, got)
		}
	}
	for _, want := range []string{"stop ok", "app: module stopped expose calculator@1.0.0", "app: netron stopped"} {
		if !slices.Contains(got, want) {
			t.Errorf("%q missing: %q", want, got)
		}
	}
}

func TestStopErrorsAreReportedAndShutdownContinues(t *testing.T) {
	ctx := ctxT(t)
	rec := &recorder{}
	a, _ := app.New(app.WithLogger(slog.New(rec)), app.WithModules(
		&module{name: "a", rec: rec},
		&module{name: "b", rec: rec, onStop: func(context.Context) error { return errors.New("stuck") }},
	))
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := a.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "stop module b: stuck") {
		t.Fatalf("Stop = %v", err)
	}
	if !slices.Contains(rec.list(), "stop a") {
		t.Error("a was not stopped after b failed")
	}
}

func TestRunStopsOnSIGTERM(t *testing.T) {
	rec := &recorder{}
	a, err := app.New(
		app.WithNetronConfig(localNetron("sig")),
		app.WithLogger(slog.New(rec)),
		app.WithModules(&module{name: "m", rec: rec}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Netron(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- a.Run(context.Background()) }()
	select {
	case <-a.Ready():
	case err := <-errc:
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after SIGTERM")
	}
	got := rec.list()
	if !slices.Contains(got, "stop m") || !slices.Contains(got, "app: netron stopped") {
		t.Errorf("not shut down: %q", got)
	}
}

func TestRunShutdownTimeout(t *testing.T) {
	rec := &recorder{}
	release := make(chan struct{})
	a, _ := app.New(
		app.WithLogger(slog.New(rec)),
		app.WithShutdownTimeout(50*time.Millisecond),
		app.WithModules(&module{name: "slow", rec: rec, onStop: func(context.Context) error {
			<-release // ignores its context
			return nil
		}}),
	)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	<-a.Ready()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, app.ErrShutdownTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v, want ErrShutdownTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not give up at the shutdown timeout")
	}
	close(release)
	<-a.Done()
}

func TestStopBeforeStartReleasesNetron(t *testing.T) {
	ctx := ctxT(t)
	a, _ := app.New(app.WithNetronConfig(localNetron("early")), app.WithLogger(slog.New(slog.DiscardHandler)))
	if _, err := a.Netron(); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Register(&module{}); !errors.Is(err, app.ErrAlreadyStarted) {
		t.Errorf("Register after Stop = %v", err)
	}
	// goleak (TestMain) checks the Netron's goroutines are gone.
}

func TestRegisterAfterStart(t *testing.T) {
	ctx := ctxT(t)
	a, _ := app.New(app.WithLogger(slog.New(slog.DiscardHandler)))
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop(ctx)
	if err := a.Register(&module{}); !errors.Is(err, app.ErrAlreadyStarted) {
		t.Errorf("Register = %v", err)
	}
	if err := a.Start(ctx); !errors.Is(err, app.ErrAlreadyStarted) {
		t.Errorf("second Start = %v", err)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := app.New(app.WithNetronConfig(netron.Config{Port: 70000}))
	var ce *app.ConfigError
	if !errors.As(err, &ce) || ce.Field != "netron.port" || !errors.Is(err, app.ErrInvalidConfig) {
		t.Fatalf("New = %v, want a ConfigError for netron.port", err)
	}
}

func TestFuncModuleAndLogOutputFlush(t *testing.T) {
	ctx := ctxT(t)
	var order []string
	out := &flushWriter{}
	a, err := app.New(app.WithLogOutput(out), app.WithModules(
		app.Func("f", func(context.Context) error { order = append(order, "start"); return nil }, nil),
		app.Func("g", nil, func(context.Context) error { order = append(order, "stop"); return nil }),
	))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(order, []string{"start", "stop"}) {
		t.Errorf("order %q", order)
	}
	if !out.flushed.Load() {
		t.Error("log output not flushed")
	}
	if !strings.Contains(out.String(), `msg="app: module started" module=f`) {
		t.Errorf("log:\n%s", out.String())
	}
}

type flushWriter struct {
	strings.Builder
	flushed atomic.Bool
}

func (w *flushWriter) Flush() error { w.flushed.Store(true); return nil }
