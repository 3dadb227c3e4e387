package netron_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}
	goleak.VerifyTestMain(m)
}

type Point struct {
	X, Y int
	Tag  string
}

type Everything struct{}

func (Everything) Int(v int) int                         { return v }
func (Everything) Int64(v int64) int64                   { return v }
func (Everything) Uint32(v uint32) uint32                { return v }
func (Everything) Float(v float64) float64               { return v }
func (Everything) String(v string) string                { return v }
func (Everything) Bytes(v []byte) []byte                 { return v }
func (Everything) Slice(v []string) []string             { return v }
func (Everything) Map(v map[string]int) map[string]int   { return v }
func (Everything) Struct(v Point) Point                  { return v }
func (Everything) Ptr(v *Point) *Point                   { return v }
func (Everything) Nil() any                              { return nil }
func (Everything) Bool(v bool) bool                      { return v }
func (Everything) Sum(ctx context.Context, a, b int) int { return a + b }
func (Everything) NoResult()                             {}
func (Everything) Fail(msg string) error                 { return errors.New(msg) }
func (Everything) Coded() (int, error) {
	e := rpc.NewError(429, "quota exceeded", map[string]any{"plan": "free"})
	e.Fields = map[string]any{"quota": 10, "used": 12}
	return 0, e
}
func (Everything) Panic() int { panic("boom") }
func (Everything) Sleep(ctx context.Context, ms int) (int, error) {
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return ms, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// pair starts a server node exposing Everything and a client node
// connected to it.
func pair(t *testing.T) (server, client *netron.Node, svc *rpc.Service) {
	t.Helper()
	return pairWith(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true})
}

// pairWith is pair with a server configured by cfg.
func pairWith(t *testing.T, cfg netron.Config) (server, client *netron.Node, svc *rpc.Service) {
	t.Helper()
	ctx := context.Background()
	server = startNode(t, cfg)
	if err := server.Expose("everything@1.0.0", Everything{}); err != nil {
		t.Fatal(err)
	}
	client = startNode(t, netron.Config{ID: "client"})
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err = p.Service(ctx, "everything@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	return server, client, svc
}

func nodeConfig(id string, server bool) netron.Config {
	return netron.Config{ID: id, Host: "127.0.0.1", Server: server}
}

func startNode(t testing.TB, cfg netron.Config) *netron.Node {
	t.Helper()
	n, err := netron.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return n
}

func roundTrip[T any](t *testing.T, svc *rpc.Service, method string, v T) {
	t.Helper()
	got, err := rpc.Call[T](context.Background(), svc, method, v)
	if err != nil {
		t.Fatalf("%s(%v): %v", method, v, err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("%s(%#v) = %#v", method, v, got)
	}
}

func TestRoundTrips(t *testing.T) {
	_, _, svc := pair(t)
	roundTrip(t, svc, "int", -42)
	roundTrip(t, svc, "int", 1<<40)
	roundTrip(t, svc, "int64", int64(-1<<62))
	roundTrip(t, svc, "uint32", uint32(4294967289))
	roundTrip(t, svc, "float", 2.75)
	roundTrip(t, svc, "string", "héllo, 世界")
	roundTrip(t, svc, "string", "")
	roundTrip(t, svc, "bytes", []byte{0, 1, 2, 0xff})
	roundTrip(t, svc, "slice", []string{"a", "b", "c"})
	roundTrip(t, svc, "map", map[string]int{"one": 1, "two": 2})
	roundTrip(t, svc, "struct", Point{X: 1, Y: -2, Tag: "p"})
	roundTrip(t, svc, "ptr", &Point{X: 3})
	roundTrip(t, svc, "bool", true)

	ctx := context.Background()
	if got, err := rpc.Call[any](ctx, svc, "nil"); err != nil || got != nil {
		t.Fatalf("nil() = %v, %v", got, err)
	}
	if got, err := rpc.Call[*Point](ctx, svc, "ptr", nil); err != nil || got != nil {
		t.Fatalf("ptr(nil) = %v, %v", got, err)
	}
	if _, err := svc.Call(ctx, "noResult"); err != nil {
		t.Fatal(err)
	}
	if got, err := rpc.Call[int](ctx, svc, "sum", 2, 3); err != nil || got != 5 {
		t.Fatalf("sum(2, 3) = %v, %v", got, err)
	}
	// A float64 holding an exact integer is accepted for an int parameter
	// (what JavaScript peers send); 2.5 is not.
	if got, err := rpc.Call[int](ctx, svc, "int", 4294967296.0); err != nil || got != 4294967296 {
		t.Fatalf("int(4294967296.0) = %v, %v", got, err)
	}
	if _, err := rpc.Call[int](ctx, svc, "int", 2.5); !errors.Is(err, rpc.ErrArgumentType) {
		t.Fatalf("int(2.5): %v, want ErrArgumentType", err)
	}
}

func TestRemoteErrors(t *testing.T) {
	_, client, svc := pair(t)
	ctx := context.Background()

	_, err := svc.Call(ctx, "fail", "it broke")
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != 500 || re.Message != "it broke" || re.Name != "Error" {
		t.Fatalf("fail: %#v", err)
	}

	_, err = svc.Call(ctx, "coded")
	if !errors.Is(err, rpc.ErrTooManyRequests) || !errors.As(err, &re) {
		t.Fatalf("coded: %v", err)
	}
	if re.Details["plan"] != "free" || fmt.Sprint(re.Fields["quota"]) != "10" || fmt.Sprint(re.Fields["used"]) != "12" {
		t.Fatalf("coded: details %v fields %v", re.Details, re.Fields)
	}

	_, err = svc.Call(ctx, "panic")
	if !errors.Is(err, rpc.ErrInternal) {
		t.Fatalf("panic: %v, want ErrInternal", err)
	}
	// The node survived the panic.
	if got, err := rpc.Call[int](ctx, svc, "int", 7); err != nil || got != 7 {
		t.Fatalf("after panic: %v, %v", got, err)
	}

	p := client.Peers()[0]
	cases := []struct {
		name   string
		call   func() error
		want   error
		notnot []error
	}{
		{"unknown service", func() error { _, err := p.Service(ctx, "nosuch@1.0.0"); return err }, rpc.ErrServiceNotFound, []error{rpc.ErrMethodNotFound}},
		{"unknown method", func() error { _, err := svc.Call(ctx, "nosuch"); return err }, rpc.ErrMethodNotFound, []error{rpc.ErrServiceNotFound}},
		{"unexported method", func() error { _, err := svc.Call(ctx, "Int", 1); return err }, rpc.ErrMethodNotFound, nil},
		{"too few arguments", func() error { _, err := svc.Call(ctx, "sum", 1); return err }, rpc.ErrArgumentCount, []error{rpc.ErrArgumentType}},
		{"too many arguments", func() error { _, err := svc.Call(ctx, "sum", 1, 2, 3); return err }, rpc.ErrArgumentCount, nil},
		{"wrong argument type", func() error { _, err := svc.Call(ctx, "sum", "one", 2); return err }, rpc.ErrArgumentType, []error{rpc.ErrArgumentCount}},
		{"unknown task", func() error { _, err := p.RunTask(ctx, "nosuch"); return err }, rpc.ErrTaskNotFound, nil},
	}
	for _, c := range cases {
		err := c.call()
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if !errors.Is(err, rpc.ErrNotFound) && !errors.Is(err, rpc.ErrBadRequest) {
			t.Errorf("%s: %v is neither 404 nor 400", c.name, err)
		}
		for _, n := range c.notnot {
			if errors.Is(err, n) {
				t.Errorf("%s: %v also matches %v", c.name, err, n)
			}
		}
	}
}

func TestConcurrentCallsOneConnection(t *testing.T) {
	_, client, svc := pair(t)
	if n := len(client.Peers()); n != 1 {
		t.Fatalf("%d connections", n)
	}
	const calls = 1000
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			got, err := rpc.Call[int](context.Background(), svc, "sum", i, i*3)
			if err == nil && got != 4*i {
				err = fmt.Errorf("sum(%d, %d) = %d", i, 3*i, got)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCallDeadline(t *testing.T) {
	_, _, svc := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := svc.Call(ctx, "sleep", 10_000)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}

func TestDefaultRequestTimeout(t *testing.T) {
	server := startNode(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true})
	if err := server.Expose("everything@1.0.0", Everything{}); err != nil {
		t.Fatal(err)
	}
	client := startNode(t, netron.Config{ID: "client", RequestTimeout: 100 * time.Millisecond})
	p, err := client.Connect(context.Background(), server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(context.Background(), "everything")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Call(context.Background(), "sleep", 10_000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}

type V struct{ v string }

func (s V) Version() string { return s.v }

func TestVersions(t *testing.T) {
	ctx := context.Background()
	server := startNode(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true})
	for _, v := range []string{"1.0.0", "1.2.0", "1.2.5", "2.0.0", "2.1.0-rc.1"} {
		if err := server.Expose("versioned@"+v, V{v}); err != nil {
			t.Fatal(err)
		}
	}
	client := startNode(t, netron.Config{ID: "client"})
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	for spec, want := range map[string]string{
		"versioned":            "2.0.0",
		"versioned@latest":     "2.0.0",
		"versioned@*":          "2.0.0",
		"versioned@1.2.0":      "1.2.0",
		"versioned@2.1.0-rc.1": "2.1.0-rc.1",
		"versioned@^1":         "1.2.5",
		"versioned@~1.2":       "1.2.5",
		"versioned@~1.0":       "1.0.0",
		"versioned@>=1.0 <1.2": "1.0.0",
		"versioned@^2":         "2.0.0",
	} {
		for _, lookup := range []struct {
			where string
			get   func() (*rpc.Service, error)
		}{
			{"remote", func() (*rpc.Service, error) { return p.Service(ctx, spec) }},
			{"local", func() (*rpc.Service, error) { return server.Service(ctx, spec) }},
		} {
			svc, err := lookup.get()
			if err != nil {
				t.Errorf("%s %s: %v", lookup.where, spec, err)
				continue
			}
			got, err := rpc.Call[string](ctx, svc, "version")
			if err != nil || got != want || svc.Version() != want {
				t.Errorf("%s %s: called %q (%v), definition %s, want %s", lookup.where, spec, got, err, svc.Version(), want)
			}
		}
	}
	for _, spec := range []string{"versioned@3.0.0", "versioned@^3", "versioned@1.1.0", "other"} {
		if _, err := p.Service(ctx, spec); !errors.Is(err, rpc.ErrServiceNotFound) {
			t.Errorf("%s: %v, want ErrServiceNotFound", spec, err)
		}
	}
	if err := server.Unexpose("versioned@2.0.0"); err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "versioned")
	if err != nil || svc.Version() != "1.2.5" {
		t.Fatalf("latest after unexpose: %v %v", svc, err)
	}
}

func TestExposeValidation(t *testing.T) {
	n, err := netron.New(netron.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	for _, qn := range []string{"calc", "calc@", "calc@1", "calc@1.0", "calc@v1.0.0", "@1.0.0", "bad name@1.0.0", "a/b@1.0.0", ".calc@1.0.0"} {
		err := n.Expose(qn, Everything{})
		if !errors.Is(err, rpc.ErrInvalidName) && !errors.Is(err, rpc.ErrInvalidVersion) {
			t.Errorf("Expose(%q) = %v, want a name or version error", qn, err)
		}
	}
	if err := n.Expose("calc.v2@1.0.0", Everything{}); err != nil {
		t.Fatal(err)
	}
	if err := n.Expose("calc.v2@1.0.0", Everything{}); !errors.Is(err, rpc.ErrAlreadyExposed) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := n.Expose("empty@1.0.0", struct{}{}); !errors.Is(err, rpc.ErrInvalidService) {
		t.Fatalf("no methods: %v", err)
	}
	if err := n.Unexpose("nosuch@1.0.0"); !errors.Is(err, rpc.ErrNotExposed) {
		t.Fatalf("unexpose: %v", err)
	}
}

func TestLocalCalls(t *testing.T) {
	n := startNode(t, netron.Config{ID: "solo"})
	if err := n.Expose("everything@1.0.0", Everything{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svc, err := n.Service(ctx, "everything@^1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rpc.Call[int](ctx, svc, "sum", 20, 22); err != nil || got != 42 {
		t.Fatalf("local sum = %v, %v", got, err)
	}
	if _, err := svc.Call(ctx, "nosuch"); !errors.Is(err, rpc.ErrMethodNotFound) {
		t.Fatalf("local unknown method: %v", err)
	}
	if _, err := svc.Call(ctx, "coded"); !errors.Is(err, rpc.ErrTooManyRequests) {
		t.Fatalf("local coded error: %v", err)
	}
	if _, err := svc.Call(ctx, "panic"); !errors.Is(err, rpc.ErrInternal) {
		t.Fatalf("local panic: %v", err)
	}
}

func TestStartFailsWhenPortTaken(t *testing.T) {
	a := startNode(t, netron.Config{ID: "a", Host: "127.0.0.1", Server: true})
	b, err := netron.New(netron.Config{ID: "b", Host: "127.0.0.1", Port: a.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(context.Background())
	if err := b.Start(context.Background()); err == nil {
		t.Fatal("Start succeeded on a port in use")
	}
}

// A service or method that is not there is named, with what is: the
// versions of the service, the services, or the methods.
func TestNotFoundSaysWhatExists(t *testing.T) {
	server, client, svc := pair(t)
	ctx := context.Background()
	if err := server.Expose("everything@1.2.0", Everything{}); err != nil {
		t.Fatal(err)
	}
	p := client.Peers()[0]
	waitFor(t, "the client to learn of everything@1.2.0", func() bool { _, ok := p.Services()["everything@1.2.0"]; return ok })
	for _, tc := range []struct {
		err  error
		is   error
		want string
	}{
		{func() error { _, err := p.Service(ctx, "everything@^9"); return err }(), rpc.ErrServiceNotFound,
			"rpc: everything@^9: no match (404); available: 1.0.0, 1.2.0"},
		{func() error { _, err := p.Service(ctx, "nothing"); return err }(), rpc.ErrServiceNotFound,
			`rpc: service "nothing" not found (404); available: everything@1.0.0, everything@1.2.0`},
		{func() error { _, err := server.Service(ctx, "everything@~1.1"); return err }(), rpc.ErrServiceNotFound,
			"rpc: everything@~1.1: no match (404); available: 1.0.0, 1.2.0"},
		{func() error { _, err := svc.Call(ctx, "nope"); return err }(), rpc.ErrMethodNotFound,
			`rpc: everything@1.0.0: method "nope" not found (404); available: bool, bytes, coded, fail, float, int, int64, map, nil, noResult, panic, ptr, sleep, slice, string, struct, sum, uint32`},
		{func() error { _, err := svc.Call(ctx, "int", "x"); return err }(), rpc.ErrArgumentType,
			"rpc: everything@1.0.0.int argument 1: want int: "},
	} {
		if !errors.Is(tc.err, tc.is) || !strings.HasPrefix(fmt.Sprint(tc.err), tc.want) {
			t.Errorf("got  %v\nwant %s", tc.err, tc.want)
		}
	}
}
