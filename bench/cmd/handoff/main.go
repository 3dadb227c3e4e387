// Command handoff measures what goroutine hand-offs cost a sequential
// WebSocket round trip, on raw coder/websocket over loopback, with no
// protocol on top: the ceiling of Netron's structure, as cmd/compare's
// raw WebSocket column is the ceiling of the transport.
//
// A Netron round trip has two hand-offs: the client's reader goroutine
// hands the reply to the waiting caller, and the server's reader hands the
// request to a worker. This program runs one caller against an echo
// server in four shapes — no hand-off (the caller reads its own reply, the
// server's reader writes the reply), a client reader, a server worker,
// both — each with and without a runtime.Gosched after every write (what
// Netron's transport.Conn does after writing a lone packet). It prints round
// trips per second and CPU time per round trip (both sides, user and
// system, from getrusage), medians of -count interleaved rounds.
//
//	go run ./cmd/handoff -duration 2s -count 3
//
// The distance between Netron's sequential figure and the "both, yield"
// row is what Netron's own code costs; the distance between that row and
// "none" is what its structure costs (see docs/benchmarks.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "handoff:", err)
		os.Exit(1)
	}
}

// shape is one way of arranging a round trip's goroutines.
type shape struct {
	clientReader bool // a goroutine reads replies and hands them to the caller
	serverWorker bool // the server's reader hands requests to a worker
	yield        bool // runtime.Gosched after every write
}

func (s shape) String() string {
	name := "none"
	switch {
	case s.clientReader && s.serverWorker:
		name = "both"
	case s.clientReader:
		name = "client reader"
	case s.serverWorker:
		name = "server worker"
	}
	if s.yield {
		return name + ", yield"
	}
	return name
}

// shapes lists every combination, the no-yield ones first.
func shapes() []shape {
	var out []shape
	for _, y := range []bool{false, true} {
		for _, c := range []bool{false, true} {
			for _, w := range []bool{false, true} {
				out = append(out, shape{clientReader: c, serverWorker: w, yield: y})
			}
		}
	}
	return out
}

// result is one round of one shape.
type result struct {
	rtps     float64 // round trips per second
	cpuPerRT time.Duration
}

func run(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("handoff", flag.ContinueOnError)
	fs.SetOutput(w)
	d := fs.Duration("duration", 2*time.Second, "length of one round of one shape")
	count := fs.Int("count", 3, "rounds; each shape reports its median")
	only := fs.String("shape", "", "run only the shape named exactly this (for perf)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *d <= 0 || *count < 1 {
		return errors.New("-duration and -count must be positive")
	}
	srv, err := startServer()
	if err != nil {
		return err
	}
	defer srv.close()

	all := shapes()
	if *only != "" {
		all = slices.DeleteFunc(all, func(s shape) bool { return s.String() != *only })
		if len(all) == 0 {
			return fmt.Errorf("no shape %q", *only)
		}
	}
	rounds := make([][]result, len(all))
	for range *count {
		for i, s := range all { // interleaved: noise hits every shape alike
			r, err := measure(ctx, srv.url, s, *d)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			rounds[i] = append(rounds[i], r)
		}
	}
	fmt.Fprintf(w, "sequential round trips, raw coder/websocket, %s × %d rounds (medians)\n\n", *d, *count)
	fmt.Fprintf(w, "| hand-offs | rt/s | CPU per round trip |\n|---|---|---|\n")
	for i, s := range all {
		rs := rounds[i]
		fmt.Fprintf(w, "| %s | %.0f | %.1f µs |\n", s,
			medianOf(rs, func(r result) float64 { return r.rtps }),
			medianOf(rs, func(r result) float64 { return float64(r.cpuPerRT) / 1e3 }))
	}
	return nil
}

func medianOf(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// measure runs sequential round trips of a 16-byte request and an 8-byte
// reply for d on a new connection arranged as s.
func measure(ctx context.Context, url string, s shape, d time.Duration) (result, error) {
	path := "/direct"
	if s.serverWorker {
		path = "/worker"
	}
	if s.yield {
		path += "?yield=1"
	}
	c, _, err := websocket.Dial(ctx, url+path, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return result{}, err
	}
	defer c.CloseNow()

	// Socket calls get context.Background(): coder/websocket arms a
	// context.AfterFunc per call for a context that can be cancelled.
	// Closing the connection ends a blocked call instead.
	bg := context.Background()
	var replies chan []byte
	var wg sync.WaitGroup
	if s.clientReader {
		replies = make(chan []byte, 1)
		wg.Go(func() {
			defer close(replies)
			buf := make([]byte, 64)
			for {
				m, err := readMsg(c, buf)
				if err != nil {
					return
				}
				replies <- m // the caller is done with the previous reply
			}
		})
	}
	stop := context.AfterFunc(ctx, func() { c.CloseNow() })
	defer stop()

	req := make([]byte, 16)
	buf := make([]byte, 64)
	n := 0
	cpu0 := cpuTime()
	start := time.Now()
	for time.Since(start) < d {
		if err := c.Write(bg, websocket.MessageBinary, req); err != nil {
			return result{}, err
		}
		if s.yield {
			runtime.Gosched()
		}
		var reply []byte
		if s.clientReader {
			var ok bool
			if reply, ok = <-replies; !ok {
				return result{}, errors.New("connection closed")
			}
		} else if reply, err = readMsg(c, buf); err != nil {
			return result{}, err
		}
		if len(reply) != 8 {
			return result{}, fmt.Errorf("reply of %d bytes, want 8", len(reply))
		}
		n++
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	c.CloseNow()
	wg.Wait()
	if n == 0 {
		return result{}, errors.New("no round trip completed")
	}
	return result{rtps: float64(n) / elapsed.Seconds(), cpuPerRT: cpu / time.Duration(n)}, nil
}

// readMsg reads one message into buf, which must be large enough.
func readMsg(c *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := c.Reader(context.Background())
	if err != nil {
		return nil, err
	}
	n := 0
	for {
		if n == len(buf) {
			return nil, errors.New("message larger than the buffer")
		}
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return buf[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// server echoes the first 8 bytes of each request. On /direct the
// connection's reader writes the reply; on /worker it hands the request to
// a worker goroutine, which writes it.
type server struct {
	srv      *http.Server
	url      string
	wg       sync.WaitGroup // Serve
	handlers sync.WaitGroup // connections, which http.Server does not track once hijacked
}

func startServer() (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{url: "ws://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("/direct", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, false) })
	mux.HandleFunc("/worker", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, true) })
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Go(func() { _ = s.srv.Serve(ln) })
	return s, nil
}

func (s *server) serve(w http.ResponseWriter, r *http.Request, worker bool) {
	s.handlers.Add(1)
	defer s.handlers.Done()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	defer c.CloseNow()
	yield := r.URL.Query().Get("yield") == "1"
	bg := context.Background()
	reply := func(m []byte) error {
		err := c.Write(bg, websocket.MessageBinary, m[:8])
		if yield {
			runtime.Gosched()
		}
		return err
	}
	buf := make([]byte, 64)
	if !worker {
		for {
			m, err := readMsg(c, buf)
			if err != nil || len(m) < 8 || reply(m) != nil {
				return
			}
		}
	}
	// The worker gets its own copy, as a Netron worker gets its packet.
	jobs := make(chan []byte, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(jobs)
	wg.Go(func() {
		for m := range jobs {
			if reply(m) != nil {
				c.CloseNow()
			}
		}
	})
	for {
		m, err := readMsg(c, buf)
		if err != nil || len(m) < 8 {
			return
		}
		jobs <- append([]byte(nil), m...)
	}
}

// close stops the server and waits for its connections, which end when
// their clients close them.
func (s *server) close() {
	_ = s.srv.Close()
	s.wg.Wait()
	s.handlers.Wait()
}
