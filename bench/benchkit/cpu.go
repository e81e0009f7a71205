package benchkit

// CPUSample is cumulative CPU time in seconds at one moment: of this
// process (the clients), the gateway, Postgres (the postmaster and all its
// processes) and the whole machine, all cores together.
type CPUSample struct {
	ok                                 bool // false where it cannot be measured
	client, gateway, postgres, machine float64
}

// CPUUsage is the CPU time, in seconds, spent during a phase. Other is the
// machine's time not accounted for by the three: the kernel's own threads
// and anything else running on the machine.
type CPUUsage struct {
	Client, Gateway, Postgres, Other float64
}

// Until returns the CPU time spent between a and b; ok is false if either
// could not be measured.
func (a CPUSample) Until(b CPUSample) (u CPUUsage, ok bool) {
	if !a.ok || !b.ok {
		return CPUUsage{}, false
	}
	u = CPUUsage{
		Client:   b.client - a.client,
		Gateway:  b.gateway - a.gateway,
		Postgres: b.postgres - a.postgres,
	}
	// Sampling is tick-granular, so the difference can dip below zero.
	u.Other = max(0, (b.machine-a.machine)-u.Client-u.Gateway-u.Postgres)
	return u, true
}

// CPUMeter samples the CPU time of the processes taking part. Zero pids are
// left out. A nil *CPUMeter measures nothing. Sample may be called
// concurrently.
type CPUMeter struct {
	GatewayPID    int
	PostmasterPID int
	// ExcludePID is a process whose CPU time counts nowhere, not even as
	// other: the idle spinners (KeepAwake), which use whatever CPU the
	// rest leaves.
	ExcludePID int
}
