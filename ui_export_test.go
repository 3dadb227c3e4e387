package netron

import (
	"net/http"
	"time"
)

// UIHandlerEvery is UIHandler with snapshots every d.
func UIHandlerEvery(n *Node, d time.Duration) http.Handler { return n.uiHandler(d) }
