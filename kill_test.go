package netron_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/netron-go/netron"
)

const childEnv = "NETRON_TEST_CHILD"

// runChild runs a server node in a child process of the test binary, so a
// test can kill it for real.
func runChild() {
	n, err := netron.New(netron.Config{ID: "child", Host: "127.0.0.1", Server: true})
	if err == nil {
		err = n.Start(context.Background())
	}
	if err == nil {
		err = n.Expose("everything@1.0.0", Everything{})
	}
	if err == nil {
		err = n.Expose("streamer@1.0.0", newStreamer())
	}
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("URL", n.URL())
	select {}
}

// startChild starts runChild in a new process and returns its URL.
func startChild(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "URL ") {
		t.Fatalf("child: %q %v", line, err)
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "URL "))
}

// A call to a peer that is killed mid-call fails at once with the
// disconnect error, not after the request timeout.
func TestPeerKilledMidCall(t *testing.T) {
	cmd, url := startChild(t)
	client := startNode(t, netron.Config{ID: "client", RequestTimeout: 30 * time.Second})
	ctx := context.Background()
	p, err := client.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "everything")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := svc.Call(ctx, "sleep", 60_000)
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the call reach the child
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case err := <-errc:
		elapsed := time.Since(killed)
		t.Logf("call failed %v after the kill: %v", elapsed, err)
		if !errors.Is(err, netron.ErrPeerDisconnected) {
			t.Fatalf("got %v, want ErrPeerDisconnected", err)
		}
		if elapsed > 100*time.Millisecond {
			t.Fatalf("the call failed %v after the kill, want within 100 ms", elapsed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("call still pending 5 s after its peer was killed")
	}
	if _, err := svc.Call(ctx, "int", 1); !errors.Is(err, netron.ErrPeerDisconnected) {
		t.Fatalf("call after disconnect: %v", err)
	}
}
