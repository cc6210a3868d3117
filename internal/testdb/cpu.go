package testdb

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcessCPU is the user and system CPU time this process has used: with
// other load on the machine a steadier figure for a benchmark than the
// elapsed time.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PostgresCPU is the CPU time the PostgreSQL server on this machine has
// used so far: every process named postgres, with the postmaster's ended
// children. Reported beside ProcessCPU, it makes the two drivers compare
// (SQLite runs inside the process); keep other PostgreSQL work off the
// machine while measuring.
func PostgresCPU() time.Duration {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, []byte(" (postgres) ")) {
			continue
		}
		// After the command: state is field 3; utime, stime, cutime and
		// cstime are fields 14 to 17.
		rest := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(rest) < 15 {
			continue
		}
		for _, v := range rest[11:15] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}
