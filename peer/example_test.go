package peer_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// Billing tells who called it.
type Billing struct{}

func (Billing) Whoami(ctx context.Context) string {
	id, _ := peer.IdentityFrom(ctx)
	if id == nil {
		return "nobody"
	}
	return id.Subject + " (" + id.Method + ")"
}

// A node that checks HMAC tokens: a peer dials with a token for its
// subject, and the service reads who called it; a peer without a token is
// refused.
func ExampleHMACToken() {
	ctx := context.Background()
	key := "0123456789abcdef0123456789abcdef"
	server, _ := netron.New(netron.Config{ID: "billing-node", Host: "127.0.0.1", Server: true,
		Auth: netron.AuthConfig{HMACKey: key}})
	_ = server.Expose("billing@1.0.0", Billing{})
	if err := server.Start(ctx); err != nil {
		panic(err)
	}
	defer server.Stop(ctx)

	token, _ := peer.NewHMACToken([]byte(key), "billing", time.Hour)
	client, _ := netron.New(netron.Config{ID: "client", Auth: netron.AuthConfig{DialToken: token}})
	_ = client.Start(ctx)
	defer client.Stop(ctx)
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		panic(err)
	}
	svc, _ := p.Service(ctx, "billing")
	fmt.Println(rpc.Call[string](ctx, svc, "whoami"))

	stranger, _ := netron.New(netron.Config{ID: "stranger"})
	_ = stranger.Start(ctx)
	defer stranger.Stop(ctx)
	_, err = stranger.Connect(ctx, server.URL())
	fmt.Println(errors.Is(err, peer.ErrUnauthenticated))
	// Output:
	// billing (hmac) <nil>
	// true
}

// A handler that reads IdentityFrom, called in a test as a peer would
// call it.
func ExampleWithIdentity() {
	ctx := peer.WithIdentity(context.Background(), &peer.Identity{Subject: "ops", Method: "token"})
	fmt.Println(Billing{}.Whoami(ctx))
	fmt.Println(Billing{}.Whoami(context.Background()))
	// Output:
	// ops (token)
	// nobody
}
