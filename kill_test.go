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
	if err == nil {
		err = n.Expose("held@1.0.0", childHeld{})
	}
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("URL", n.URL())
	select {}
}

// childHeld's Hold tells the parent, on the child's standard output, that
// a call is running, and holds it until its context ends.
type childHeld struct{}

func (childHeld) Hold(ctx context.Context) error {
	fmt.Println("HOLD")
	<-ctx.Done()
	return ctx.Err()
}

// startChild starts runChild in a new process and returns its URL and
// the rest of its standard output.
func startChild(t *testing.T) (*exec.Cmd, string, *bufio.Reader) {
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
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "URL ") {
		t.Fatalf("child: %q %v", line, err)
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "URL ")), rd
}

// A call to a peer that is killed mid-call fails with the disconnect
// error, not by the request timeout (ten minutes here).
func TestPeerKilledMidCall(t *testing.T) {
	cmd, url, out := startChild(t)
	client := startNode(t, netron.Config{ID: "client", RequestTimeout: 10 * time.Minute})
	ctx := context.Background()
	p, err := client.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := svc.Call(ctx, "hold")
		errc <- err
	}()
	if line, err := out.ReadString('\n'); line != "HOLD\n" { // the call runs in the child
		t.Fatalf("child: %q %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case err := <-errc:
		t.Logf("call failed %v after the kill: %v", time.Since(killed), err)
		if !errors.Is(err, netron.ErrPeerDisconnected) {
			t.Fatalf("got %v, want ErrPeerDisconnected", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("call still pending 30 s after its peer was killed")
	}
	if _, err := svc.Call(ctx, "hold"); !errors.Is(err, netron.ErrPeerDisconnected) {
		t.Fatalf("call after disconnect: %v", err)
	}
}
