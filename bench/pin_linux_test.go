//go:build linux

package bench_test

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// cpuMask is a Linux cpu_set_t: one bit per CPU, 1,024 CPUs.
type cpuMask [16]uint64

func (m *cpuMask) set(cpu int)      { m[cpu/64] |= 1 << (cpu % 64) }
func (m *cpuMask) has(cpu int) bool { return m[cpu/64]&(1<<(cpu%64)) != 0 }

// allowedCPUs lists the CPUs this process may run on, in order.
func allowedCPUs() ([]int, error) {
	var m cpuMask
	if _, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, unsafe.Sizeof(m),
		uintptr(unsafe.Pointer(&m))); errno != 0 {
		return nil, fmt.Errorf("sched_getaffinity: %w", errno)
	}
	var cpus []int
	for c := range len(m) * 64 {
		if m.has(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// pinThreads restricts every thread of this process to cpus. Threads the runtime starts later
// inherit the mask of the thread that starts them, so a pass over /proc/self/task that finds no
// thread it has not pinned yet leaves the whole process on cpus.
func pinThreads(cpus []int) error {
	var m cpuMask
	for _, c := range cpus {
		if c < 0 || c >= len(m)*64 {
			return fmt.Errorf("cpu %d out of range", c)
		}
		m.set(c)
	}
	pinned := map[int]bool{}
	for pass := 0; ; pass++ {
		if pass == 10 {
			return fmt.Errorf("threads kept appearing while pinning")
		}
		entries, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		fresh := false
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || pinned[tid] {
				continue
			}
			_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(m),
				uintptr(unsafe.Pointer(&m)))
			if errno == syscall.ESRCH { // the thread ended meanwhile
				continue
			}
			if errno != 0 {
				return fmt.Errorf("sched_setaffinity(%d): %w", tid, errno)
			}
			pinned[tid], fresh = true, true
		}
		if !fresh {
			return nil
		}
	}
}
