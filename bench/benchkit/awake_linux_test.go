package benchkit

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestKeepAwake: the spinners' process has busy threads under SCHED_IDLE,
// and Stop ends it.
func TestKeepAwake(t *testing.T) {
	sp, err := KeepAwake(2)
	if err != nil {
		t.Fatal(err)
	}
	pid := sp.PID()
	idle := 0
	for deadline := time.Now().Add(10 * time.Second); idle < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if err != nil {
			t.Fatal(err)
		}
		idle = 0
		for _, task := range tasks {
			tid, _ := strconv.Atoi(task.Name())
			if attr, err := unix.SchedGetAttr(tid, 0); err == nil && attr.Policy == unix.SCHED_IDLE {
				idle++
			}
		}
	}
	if idle < 2 {
		t.Fatalf("%d SCHED_IDLE threads in the spinners' process, want 2", idle)
	}
	before, _, _, err := procStat(strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	after, _, _, err := procStat(strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 0.05 {
		t.Errorf("the spinners used %.2f s of CPU in 0.3 s; they are not spinning", after-before)
	}
	sp.Stop()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatal("the spinners' process is still there after Stop")
	}
}
