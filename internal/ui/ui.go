// Package ui serves the live web view of a node and its cluster
// (netron serve --ui): one page of plain HTML, CSS and JavaScript embedded
// in the binary, no build step and nothing loaded from elsewhere, which
// follows a stream of snapshots (server-sent events) and redraws itself
// without a reload. The same snapshots, as JSON, feed netron top.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"
)

//go:embed static
var static embed.FS

// Snapshot is what the page shows, as the node saw it at Time.
type Snapshot struct {
	Node     string    `json:"node"`
	Time     int64     `json:"time"` // unix milliseconds
	Nodes    []Node    `json:"nodes"`
	Links    []Link    `json:"links"`
	Services []Service `json:"services"`
	Peers    []Peer    `json:"peers"`
	Events   []Event   `json:"events"`
}

// Node is a node of the cluster, from discovery (or this node alone).
type Node struct {
	ID       string   `json:"id"`
	Address  string   `json:"address,omitempty"`
	Services []string `json:"services"` // "name@version"
	Self     bool     `json:"self,omitempty"`
}

// Link is a connection between two nodes.
type Link struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Direction string `json:"direction"` // inbound or outbound, seen from From
	Kind      string `json:"kind"`      // go or netron
}

// Service is what the node counted of the calls of one service on one
// side (client: calls it made; server: calls it handled), since it
// started; the page and netron top turn the counts into rates.
type Service struct {
	Name    string `json:"name"`
	Side    string `json:"side"`
	Calls   uint64 `json:"calls"`
	Errors  uint64 `json:"errors"`
	Running int64  `json:"running"`
}

// Peer is a connected peer and the calls counted to and from it.
type Peer struct {
	ID        string `json:"id"`
	Direction string `json:"direction"`
	Kind      string `json:"kind"`
	Calls     uint64 `json:"calls"`
}

// Event is what the node counted of one event it emitted.
type Event struct {
	Name    string `json:"name"`
	Emitted uint64 `json:"emitted"`
}

// Source takes a snapshot.
type Source func(ctx context.Context) Snapshot

// Handler serves the page at /, the snapshot as JSON at /api/snapshot
// and a stream of them as server-sent events at /api/events, one every
// interval (1 s if 0).
func Handler(src Source, interval time.Duration) http.Handler {
	if interval <= 0 {
		interval = time.Second
	}
	files, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(files))
	mux.HandleFunc("GET /api/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(src(r.Context()))
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			b, _ := json.Marshal(src(r.Context()))
			if _, err := w.Write(append(append([]byte("data: "), b...), '\n', '\n')); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
	})
	return mux
}
