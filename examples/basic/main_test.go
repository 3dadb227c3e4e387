package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netron-go/netron/app"
	"github.com/netron-go/netron/internal/exampletest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The README's output is what the program prints.
func TestREADMEOutput(t *testing.T) {
	var out bytes.Buffer
	if err := run(testCtx(t), &out, defaultConfig, "app.yaml", nil); err != nil {
		t.Fatal(err)
	}
	exampletest.CheckREADME(t, "go run ./examples/basic", out.String())
}

func TestEnvironmentOverrides(t *testing.T) {
	var out bytes.Buffer
	err := run(testCtx(t), &out, defaultConfig, "app.yaml", []string{"NETRON_ID=renamed", "NETRON_REQUEST_TIMEOUT=2s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"config: netron.id = renamed (from NETRON_ID), request timeout 2s\n",
		"Netron ID: renamed\n",
		"Connected to: renamed\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBadConfigurationIsNamed(t *testing.T) {
	var out bytes.Buffer
	err := run(testCtx(t), &out, defaultConfig, "app.yaml", []string{"NETRON_PORT=70000"})
	var ce *app.ConfigError
	if !errors.As(err, &ce) || ce.Field != "netron.port" || ce.Source != "NETRON_PORT" {
		t.Fatalf("run = %v", err)
	}
	err = run(testCtx(t), &out, []byte("netron:\n  id: x\n  sever: true\n"), "typo.yaml", nil)
	if err == nil || err.Error() != `invalid config: netron.sever (typo.yaml:3): unknown field (did you mean "server"?)` {
		t.Fatalf("run = %v", err)
	}
}
