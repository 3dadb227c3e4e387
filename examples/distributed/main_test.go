package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netron-go/netron/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func check(t *testing.T, redisAddr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, redisAddr, ""); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"warehouse offers inventory@1.4.0\n",
		"pricing offers pricing@2.1.0\n",
		"orders offers orders@1.0.0\n",
		"shop found orders@1.0.0 on orders\n",
		"quote: 3 × widget at 106¢ = 318¢ (60 in stock at warehouse, priced by pricing)\n",
		"too many: rpc: orders@1.0.0.quote: only 60 widget in stock (409)\nits code, for a program: rpc.Code(err) = 409\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestInMemory(t *testing.T) { check(t, "") }

func TestRedis(t *testing.T) { check(t, testredis.Start(t).Addr()) }
