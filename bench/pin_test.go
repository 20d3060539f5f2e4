//go:build unix

package bench_test

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Benchmarks run with the server and the child on separate CPUs, the server on the first half
// of those the process may use with GOMAXPROCS set to match, the child on the rest: on 2 CPUs a
// single-P server on a core of its own, as a Go service in a 1-CPU container runs. -pin=false
// shares every CPU, each process with its default GOMAXPROCS (see README.md for what changes).
var pinFlag = flag.Bool("pin", true, "when benchmarking, run the server on half of the CPUs, with GOMAXPROCS to match, and the load generator and broker on the rest")

// childCPUsEnv carries the child's CPUs, as a comma-separated list, to the child.
const childCPUsEnv = "FANBRIDGE_BENCH_CPUS"

// childCPUs are the CPUs left to the child, for childCPUsEnv; nil when nothing is pinned.
var childCPUs []int

// pinnedGen is the child startPinned started, for the harness to take.
var pinnedGen *loadgen

// splitCPUs gives the server the first half of cpus, rounded down, and the child the rest: the
// child holds both the clients and the broker.
func splitCPUs(cpus []int) (server, child []int) {
	n := len(cpus) / 2
	return cpus[:n], cpus[n:]
}

// benchmarking reports whether this run was asked for benchmarks.
func benchmarking() bool {
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

// startPinned starts the child, which moves itself to its share of the CPUs, then pins this
// process to the other share. The child starts first, on every CPU this process may use: should
// it fail to pin itself, it stays there rather than on the server's share. What was done is
// printed on the first lines of the output.
func startPinned() {
	cpus, err := allowedCPUs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: not pinned, the processes share every CPU:", err)
		return
	}
	server, child := splitCPUs(cpus)
	if len(server) == 0 {
		fmt.Println("bench: one CPU: the server, the load generator and the broker share it")
		return
	}
	childCPUs = child
	if pinnedGen, err = startLoadgen(); err != nil {
		childCPUs = nil
		fmt.Fprintln(os.Stderr, "bench: not pinned, the processes share every CPU:", err)
		return
	}
	if err := pinThreads(server); err != nil {
		// Some threads may have moved: put them all back.
		_ = pinThreads(cpus)
		fmt.Fprintf(os.Stderr, "bench: server not pinned, it runs on every CPU, the load generator and broker on CPU %s: %v\n",
			formatCPUs(child), err)
		return
	}
	runtime.GOMAXPROCS(len(server))
	fmt.Printf("bench: server on CPU %s (GOMAXPROCS %d), load generator and broker on CPU %s\n",
		formatCPUs(server), len(server), formatCPUs(child))
	if f := flag.Lookup("test.cpu"); f != nil && f.Value.String() != "" {
		fmt.Printf("bench: -cpu %s sets the server's GOMAXPROCS for each benchmark; it still runs on CPU %s\n",
			f.Value.String(), formatCPUs(server))
	}
}

// pinChild pins the child to the CPUs the parent left it, if it left any.
func pinChild() error {
	list := os.Getenv(childCPUsEnv)
	if list == "" {
		return nil
	}
	cpus, err := parseCPUs(list)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", childCPUsEnv, list, err)
	}
	if err := pinThreads(cpus); err != nil {
		return err
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

func formatCPUs(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

func parseCPUs(list string) ([]int, error) {
	var cpus []int
	for f := range strings.SplitSeq(list, ",") {
		c, err := strconv.Atoi(f)
		if err != nil || c < 0 {
			return nil, fmt.Errorf("bad CPU %q", f)
		}
		cpus = append(cpus, c)
	}
	return cpus, nil
}

func TestSplitCPUs(t *testing.T) {
	for _, tc := range []struct {
		cpus, server, child []int
	}{
		{[]int{0}, []int{}, []int{0}},
		{[]int{0, 1}, []int{0}, []int{1}},
		{[]int{0, 1, 2}, []int{0}, []int{1, 2}},
		{[]int{2, 3, 6, 7}, []int{2, 3}, []int{6, 7}},
	} {
		server, child := splitCPUs(tc.cpus)
		assert.Equal(t, tc.server, server, "%v", tc.cpus)
		assert.Equal(t, tc.child, child, "%v", tc.cpus)
	}
}

func TestCPUListRoundTrip(t *testing.T) {
	cpus, err := parseCPUs(formatCPUs([]int{1, 3, 64}))
	require.NoError(t, err)
	assert.Equal(t, []int{1, 3, 64}, cpus)
	for _, bad := range []string{"", "1,", "a", "-1", "1;2"} {
		_, err := parseCPUs(bad)
		assert.Error(t, err, "%q", bad)
	}
}

// TestPinThreads pins the whole process to one CPU and back: every thread, including ones
// started after the pinning, must report the new mask.
func TestPinThreads(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("pinning is implemented for Linux only")
	}
	all, err := allowedCPUs()
	require.NoError(t, err)
	if len(all) < 2 {
		t.Skip("needs two CPUs")
	}
	require.NoError(t, pinThreads(all[:1]))
	defer func() { require.NoError(t, pinThreads(all)) }()

	// A new goroutine locked to its thread may run on a thread started after the pinning.
	got := make(chan []int)
	errs := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpus, err := allowedCPUs()
		errs <- err
		got <- cpus
	}()
	require.NoError(t, <-errs)
	assert.Equal(t, all[:1], <-got)
	mine, err := allowedCPUs()
	require.NoError(t, err)
	assert.Equal(t, all[:1], mine)

	require.NoError(t, pinThreads(all))
	mine, err = allowedCPUs()
	require.NoError(t, err)
	assert.Equal(t, all, mine)
	assert.Error(t, pinThreads([]int{1 << 20}))
}
