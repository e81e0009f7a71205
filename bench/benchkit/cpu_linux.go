package benchkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// userHZ is the unit of the times in /proc: USER_HZ, which the kernel's
// ABI fixes at 100 whatever the kernel's own tick rate.
const userHZ = 100

// Sample reads /proc. The sample is marked unusable if anything cannot be
// read.
func (m *CPUMeter) Sample() CPUSample {
	var s CPUSample
	if m == nil {
		return s
	}
	self, _, _, err := procStat("self")
	if err != nil {
		return s
	}
	s.client = self
	if m.GatewayPID != 0 {
		own, reaped, _, err := procStat(strconv.Itoa(m.GatewayPID))
		if err != nil {
			return s
		}
		s.gateway = own + reaped
	}
	if m.PostmasterPID != 0 {
		if s.postgres, err = treeTime(m.PostmasterPID); err != nil {
			return s
		}
	}
	if s.machine, err = machineBusy(); err != nil {
		return s
	}
	if m.ExcludePID != 0 {
		own, _, _, err := procStat(strconv.Itoa(m.ExcludePID))
		if err != nil {
			return s
		}
		s.machine -= own
	}
	s.ok = true
	return s
}

// PostmasterOf returns the parent of a Postgres backend: the postmaster.
func PostmasterOf(backendPID int) (int, error) {
	_, _, ppid, err := procStat(strconv.Itoa(backendPID))
	return ppid, err
}

// procStat returns a process's own user+system time, that of its reaped
// children, in seconds, and its parent's pid.
func procStat(pid string) (own, reaped float64, ppid int, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name, in parentheses, may contain anything: the fields
	// that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%s/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state) of proc(5): ppid is field 4, utime, stime,
	// cutime and cstime are fields 14 to 17.
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("/proc/%s/stat: %d fields", pid, len(f)+2)
	}
	var n [4]int64
	for j := range n {
		if n[j], err = strconv.ParseInt(string(f[11+j]), 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
		}
	}
	if ppid, err = strconv.Atoi(string(f[1])); err != nil {
		return 0, 0, 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
	}
	return float64(n[0]+n[1]) / userHZ, float64(n[2]+n[3]) / userHZ, ppid, nil
}

// treeTime is the CPU time of root, its reaped children, and its live
// children: for the postmaster, every Postgres process there was.
func treeTime(root int) (float64, error) {
	own, reaped, _, err := procStat(strconv.Itoa(root))
	if err != nil {
		return 0, err
	}
	total := own + reaped
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		t, _, ppid, err := procStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		if ppid == root {
			total += t
		}
	}
	return total, nil
}

// machineBusy is the time all cores spent not idle, from /proc/stat.
func machineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	// cpu user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is already counted in user.
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, errors.New("/proc/stat: unexpected first line")
	}
	var busy int64
	for _, j := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(string(f[j]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += n
	}
	return float64(busy) / userHZ, nil
}
