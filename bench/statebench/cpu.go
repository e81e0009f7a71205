package main

// cpuSample is cumulative CPU time in seconds at one moment: of this
// process (the clients), the gateway, Postgres (the postmaster and all its
// processes) and the whole machine, all cores together.
type cpuSample struct {
	ok                                 bool // false where it cannot be measured
	client, gateway, postgres, machine float64
}

// cpuUsage is the CPU time, in seconds, spent during a phase. other is the
// machine's time not accounted for by the three: the kernel's own threads
// and anything else running on the machine.
type cpuUsage struct {
	client, gateway, postgres, other float64
}

func (a cpuSample) until(b cpuSample) (cpuUsage, bool) {
	if !a.ok || !b.ok {
		return cpuUsage{}, false
	}
	u := cpuUsage{
		client:   b.client - a.client,
		gateway:  b.gateway - a.gateway,
		postgres: b.postgres - a.postgres,
	}
	// Sampling is tick-granular, so the difference can dip below zero.
	u.other = max(0, (b.machine-a.machine)-u.client-u.gateway-u.postgres)
	return u, true
}

// cpuMeter samples the CPU time of the processes taking part. Zero pids are
// left out.
type cpuMeter struct {
	gatewayPID    int
	postmasterPID int
}
