package netron_test

import (
	"context"
	"errors"
	"testing"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

func TestHandleTask(t *testing.T) {
	ctx := context.Background()
	key := "0123456789abcdef0123456789abcdef"
	tok, err := peer.NewHMACToken([]byte(key), "billing", 0)
	if err != nil {
		t.Fatal(err)
	}
	server, _, p := connectPair(t, netron.Config{ID: "server", Auth: netron.AuthConfig{HMACKey: key}},
		netron.Config{ID: "client", Auth: netron.AuthConfig{DialToken: tok}})
	for _, name := range []string{"", "query_interface", "abilities", "subscribe", "unsubscribe", "emit"} {
		if err := server.HandleTask(name, func(context.Context, *rpc.Args) (any, error) { return nil, nil }); !errors.Is(err, rpc.ErrInvalidTask) {
			t.Errorf("HandleTask(%q): %v, want ErrInvalidTask", name, err)
		}
	}
	if err := server.HandleTask("nil", nil); !errors.Is(err, rpc.ErrInvalidTask) {
		t.Errorf("HandleTask with a nil handler: %v, want ErrInvalidTask", err)
	}
	whoami := func(ctx context.Context, args *rpc.Args) (any, error) {
		id, _ := peer.IdentityFrom(ctx)
		rest, err := args.Rest()
		if err != nil || id == nil {
			return nil, errors.Join(err, errors.New("no identity"))
		}
		return append([]any{id.Subject}, rest...), nil
	}
	if err := server.HandleTask("whoami", whoami); err != nil {
		t.Fatal(err)
	}
	r, err := p.RunTask(ctx, "whoami", "x", 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []any
	if err := r.Decode(&got); err != nil || len(got) != 3 || got[0] != "billing" || got[1] != "x" {
		t.Fatalf("whoami = %v, %v", got, err)
	}
	// A second registration replaces the first.
	if err := server.HandleTask("whoami", func(context.Context, *rpc.Args) (any, error) { return "v2", nil }); err != nil {
		t.Fatal(err)
	}
	if r, err = p.RunTask(ctx, "whoami"); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := r.Decode(&s); err != nil || s != "v2" {
		t.Fatalf("whoami after replacement = %q, %v", s, err)
	}
	sp := serverPeer(t, server, "client")
	if !sp.Accepted() || p.Accepted() {
		t.Errorf("Accepted: server side %v, client side %v; want true, false", sp.Accepted(), p.Accepted())
	}
	if id := sp.Identity(); id == nil || id.Subject != "billing" {
		t.Errorf("Identity on the server side = %+v", id)
	}
}
