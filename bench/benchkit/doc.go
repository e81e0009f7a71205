// Package benchkit is what the load benchmarks under bench/ share: a private
// Postgres and a real blockgate process to measure (Rig, Gateway), a
// closed-loop load driver with exact latency percentiles (Closed,
// Percentile), an open-loop one at a fixed rate that measures from each
// request's scheduled time (Open), CPU accounting by process from /proc
// (CPUMeter), and the pieces of their reports (Stats, medians, the CPU
// table, number formats).
//
// The benchmarks compare the gateway with a baseline measured by the same
// command on the same machine, alternating the two sides, so the package is
// built around phases: a phase runs one side for a fixed time while the
// CPUMeter samples the processes before and after, and Summarize turns what
// it measured into Stats. A benchmark runs several rounds of phases and
// reports medians (MedianStats), so that slow drift and other load on the
// machine hit both sides alike.
//
// # The gateway process
//
// StartGateway runs the real binary as a child process in dev mode
// (serve --dev) over a given Postgres, on loopback, with every port picked
// by the gateway except the embedded NATS server's, which the caller may
// fix (FreePort) to reach JetStream directly. It reads the SDK environment
// from <data-dir>/dev.env, waits for /v1.0/healthz, and Stop sends SIGTERM
// so that the gateway drains and exits cleanly. The child gets this
// process's environment minus BLOCKGATE_* and DAPR_*, and on Linux dies
// with it (Pdeathsig).
//
// # CPU accounting
//
// On Linux a CPUMeter reads utime+stime of this process (the clients), the
// gateway (including the NATS server it embeds), the Postgres postmaster
// with all its children, and the whole machine's busy time from /proc/stat;
// what the machine used beyond the three is "other": the kernel's threads
// and anyone else's work. Elsewhere nothing is measured and reports leave
// the CPU table out.
//
// Progress lines go to stderr and report tables to stdout, so that a
// benchmark's output can be redirected to keep only its results.
package benchkit
