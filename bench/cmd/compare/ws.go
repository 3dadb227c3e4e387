package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The transport ceiling: coder/websocket (the library Netron is built on)
// with the least possible protocol on top, one binary message per request,
// reply or chunk, buffers reused on both sides. Reads and writes get
// context.Background(): coder/websocket arms a context.AfterFunc per read
// and per write for a context that can be cancelled (several allocations
// per message), which a transport avoids by closing the connection
// instead. Whatever Netron does
// above the WebSocket costs the distance between its column and this one.

type wsBench struct {
	srv        *http.Server
	url        string
	eventConns chan *websocket.Conn // server ends of /events connections

	rpc *websocket.Conn // client end of /rpc
	mux *wsMux          // client end of /mux
}

// readMsg reads one message into buf (grown when too small) and returns it.
func readMsg(ctx context.Context, c *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := c.Reader(ctx)
	if err != nil {
		return nil, err
	}
	n := 0
	for {
		if n == len(buf) { // callers size buf so that this does not happen
			buf = append(buf, make([]byte, len(buf)+64)...)
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

func startWS(ctx context.Context) (*wsBench, error) {
	wb := &wsBench{eventConns: make(chan *websocket.Conn, 1)}
	mux := http.NewServeMux()
	accept := func(w http.ResponseWriter, r *http.Request) *websocket.Conn {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return nil
		}
		c.SetReadLimit(1 << 20)
		return c
	}
	// /rpc: a request of 16 bytes, a reply of 8; /mux: the same with a
	// 4-byte call id in front, for concurrent callers on one connection.
	serveAdd := func(idLen int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			c := accept(w, r)
			if c == nil {
				return
			}
			defer c.CloseNow()
			ctx := context.Background() // a Done channel would cost coder/websocket allocations per message
			buf := make([]byte, 64)
			out := make([]byte, idLen+8)
			for {
				in, err := readMsg(ctx, c, buf)
				if err != nil || len(in) != idLen+16 {
					return
				}
				copy(out, in[:idLen])
				le.PutUint64(out[idLen:], le.Uint64(in[idLen:])+le.Uint64(in[idLen+8:]))
				if err := c.Write(ctx, websocket.MessageBinary, out); err != nil {
					return
				}
			}
		}
	}
	mux.HandleFunc("/rpc", serveAdd(0))
	mux.HandleFunc("/mux", serveAdd(4))
	// /down?ms=: 64 KiB messages for ms milliseconds, then a 1-byte end.
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		c := accept(w, r)
		if c == nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background() // a Done channel would cost coder/websocket allocations per message
		buf := make([]byte, chunkSize+64)
		for end := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(end); {
			if err := c.Write(ctx, websocket.MessageBinary, buf[:chunkSize]); err != nil {
				return
			}
		}
		if c.Write(ctx, websocket.MessageBinary, buf[:1]) == nil {
			readMsg(ctx, c, buf) // until the client closes
		}
	})
	// /up: 64 KiB messages until a 1-byte end; the byte count back.
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		c := accept(w, r)
		if c == nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background() // a Done channel would cost coder/websocket allocations per message
		buf := make([]byte, chunkSize+64)
		var n uint64
		for {
			in, err := readMsg(ctx, c, buf)
			if err != nil {
				return
			}
			if len(in) == 1 {
				break
			}
			n += uint64(len(in))
		}
		out := make([]byte, 8)
		le.PutUint64(out, n)
		if c.Write(ctx, websocket.MessageBinary, out) == nil {
			readMsg(ctx, c, buf)
		}
	})
	// /events: the benchmark's emitter writes on the server end.
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		c := accept(w, r)
		if c == nil {
			return
		}
		defer c.CloseNow()
		wb.eventConns <- c
		readMsg(context.Background(), c, make([]byte, 64)) // until the client closes
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	wb.srv = &http.Server{Handler: mux}
	go wb.srv.Serve(ln)
	wb.url = "ws://" + ln.Addr().String()
	if wb.rpc, err = wb.dial(ctx, "/rpc"); err != nil {
		wb.close()
		return nil, err
	}
	c, err := wb.dial(ctx, "/mux")
	if err != nil {
		wb.close()
		return nil, err
	}
	wb.mux = newWSMux(c)
	return wb, nil
}

func (wb *wsBench) dial(ctx context.Context, path string) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, wb.url+path, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

func (wb *wsBench) close() {
	if wb.rpc != nil {
		wb.rpc.CloseNow()
	}
	if wb.mux != nil {
		wb.mux.c.CloseNow()
		<-wb.mux.done
	}
	wb.srv.Close()
}

// add is one round trip on the dedicated connection (one caller at a time).
func (wb *wsBench) add(ctx context.Context, a, b int64) (int64, error) {
	var req [16]byte
	le.PutUint64(req[:], uint64(a))
	le.PutUint64(req[8:], uint64(b))
	if err := wb.rpc.Write(bg, websocket.MessageBinary, req[:]); err != nil {
		return 0, err
	}
	var buf [16]byte
	out, err := readMsg(bg, wb.rpc, buf[:])
	if err != nil {
		return 0, err
	}
	if len(out) != 8 {
		return 0, errors.New("add: short reply")
	}
	return int64(le.Uint64(out)), nil
}

// wsMux multiplexes concurrent callers on one connection: a 4-byte call id
// in front of each request and reply, one reader goroutine.
type wsMux struct {
	c    *websocket.Conn
	mu   sync.Mutex
	next uint32
	wait map[uint32]chan int64
	done chan struct{}
}

func newWSMux(c *websocket.Conn) *wsMux {
	m := &wsMux{c: c, wait: make(map[uint32]chan int64), done: make(chan struct{})}
	go m.read()
	return m
}

func (m *wsMux) read() {
	defer close(m.done)
	buf := make([]byte, 64)
	for {
		in, err := readMsg(context.Background(), m.c, buf)
		if err != nil || len(in) != 12 {
			return
		}
		id := le.Uint32(in)
		m.mu.Lock()
		ch := m.wait[id]
		delete(m.wait, id)
		m.mu.Unlock()
		if ch != nil {
			ch <- int64(le.Uint64(in[4:]))
		}
	}
}

var bg = context.Background()

var replyChans = sync.Pool{New: func() any { return make(chan int64, 1) }}

func (m *wsMux) add(ctx context.Context, a, b int64) (int64, error) {
	ch := replyChans.Get().(chan int64)
	m.mu.Lock()
	m.next++
	id := m.next
	m.wait[id] = ch
	m.mu.Unlock()
	var req [20]byte
	le.PutUint32(req[:], id)
	le.PutUint64(req[4:], uint64(a))
	le.PutUint64(req[12:], uint64(b))
	if err := m.c.Write(bg, websocket.MessageBinary, req[:]); err != nil {
		return 0, err
	}
	select {
	case v := <-ch:
		replyChans.Put(ch)
		return v, nil
	case <-m.done:
		return 0, errors.New("mux: connection closed")
	}
}

func (wb *wsBench) download(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	start := time.Now()
	c, err := wb.dial(ctx, "/down?ms="+strconv.FormatInt(d.Milliseconds(), 10))
	if err != nil {
		return 0, 0, err
	}
	defer c.CloseNow()
	buf := make([]byte, chunkSize+64)
	var n int64
	for {
		in, err := readMsg(bg, c, buf)
		if err != nil {
			return 0, 0, err
		}
		if len(in) == 1 {
			break
		}
		n += int64(len(in))
	}
	return n, time.Since(start), nil
}

func (wb *wsBench) upload(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	start := time.Now()
	c, err := wb.dial(ctx, "/up")
	if err != nil {
		return 0, 0, err
	}
	defer c.CloseNow()
	buf := make([]byte, chunkSize+64)
	var sent int64
	for end := start.Add(d); time.Now().Before(end); {
		if err := c.Write(bg, websocket.MessageBinary, buf[:chunkSize]); err != nil {
			return 0, 0, err
		}
		sent += chunkSize
	}
	if err := c.Write(bg, websocket.MessageBinary, buf[:1]); err != nil {
		return 0, 0, err
	}
	out, err := readMsg(bg, c, buf)
	if err != nil {
		return 0, 0, err
	}
	if n := int64(le.Uint64(out)); n != sent {
		return 0, 0, fmt.Errorf("upload: server counted %d bytes of %d", n, sent)
	}
	return sent, time.Since(start), nil
}

// events measures 16-byte messages written on the server end of a
// connection and read by a goroutine on the client end.
func (wb *wsBench) events(ctx context.Context, d time.Duration) (rateResult, error) {
	c, err := wb.dial(ctx, "/events")
	if err != nil {
		return rateResult{}, err
	}
	defer c.CloseNow()
	var sc *websocket.Conn
	select {
	case sc = <-wb.eventConns:
	case <-time.After(5 * time.Second):
		return rateResult{}, errors.New("events: the server did not get the connection")
	}
	w := newWindow(windowSize)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 64)
		for {
			in, err := readMsg(context.Background(), c, buf)
			if err != nil || len(in) < 8 {
				return
			}
			w.got(int64(le.Uint64(in)))
		}
	}()
	r, err := measureOneWay(d, w, func(seq int64) error {
		p := make([]byte, 16)
		le.PutUint64(p, uint64(seq))
		return sc.Write(bg, websocket.MessageBinary, p)
	})
	c.CloseNow()
	<-recvDone
	return r, err
}
