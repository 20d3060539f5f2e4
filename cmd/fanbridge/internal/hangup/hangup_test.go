//go:build unix

package hangup

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The test runs itself as a child process, which sends itself SIGHUP: with SIGHUP taken (this
// package's init) the signal arrives on Take's channel and the child lives; after Release it ends
// the child, as it ends any program.
const childEnv = "FANBRIDGE_HANGUP_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "taken":
		ch := Take()
		_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
		select {
		case <-ch:
			os.Exit(0)
		case <-time.After(10 * time.Second):
			os.Exit(3) // the signal never came
		}
	case "released":
		Release()
		_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
		time.Sleep(10 * time.Second) // the signal ends the process long before
		os.Exit(3)
	}
}

func child(t *testing.T, mode string) error {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// No pause at exit under the race detector: the child ends at once.
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "GORACE=atexit_sleep_ms=0")
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the child did not end")
		return nil
	}
}

func TestTakenFromTheStart(t *testing.T) {
	if err := child(t, "taken"); err != nil {
		t.Fatalf("SIGHUP with the signal taken: %v", err)
	}
}

func TestReleaseGivesTheDefaultActionBack(t *testing.T) {
	err := child(t, "released")
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("the child lived through SIGHUP after Release: %v", err)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGHUP {
		t.Fatalf("the child ended with %v, not by SIGHUP", err)
	}
}
