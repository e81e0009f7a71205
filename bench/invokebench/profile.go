package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/blockgate/blockgate/bench/benchkit"
)

// profiler fetches CPU profiles from a gateway started with --pprof.
type profiler struct {
	dir string
	url string // the metrics listener, http://127.0.0.1:PORT
}

// newProfiler picks the metrics port the gateway will listen on and
// returns the flags that turn its profiles on. With no directory it
// returns a nil profiler and no flags.
func newProfiler(dir string) (*profiler, []string, error) {
	if dir == "" {
		return nil, nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	port, err := benchkit.FreePort()
	if err != nil {
		return nil, nil, err
	}
	p := &profiler{dir: dir, url: "http://127.0.0.1:" + strconv.Itoa(port)}
	return p, []string{"--pprof", "--metrics-port", strconv.Itoa(port)}, nil
}

// during runs phase while a CPU profile and an allocation profile of the
// gateway cover all but its last second, and writes them to
// dir/name.pprof and dir/name.allocs.pprof.
func (p *profiler) during(ctx context.Context, name string, d time.Duration, phase func() error) error {
	if p == nil {
		return phase()
	}
	secs := max(1, int((d-time.Second)/time.Second))
	kinds := []struct{ path, file string }{
		{"profile", name + ".pprof"},
		{"allocs", name + ".allocs.pprof"},
	}
	done := make(chan error, len(kinds))
	for _, k := range kinds {
		go func() { done <- p.fetch(ctx, k.path, secs, k.file) }()
	}
	err := phase()
	for range kinds {
		if perr := <-done; perr != nil {
			progress("warning: a profile of %s is missing: %v", name, perr)
		}
	}
	progress("profiles of the gateway: %s", filepath.Join(p.dir, name+"*.pprof"))
	return err
}

// fetch writes the profile at /debug/pprof/<kind> over secs seconds (a
// delta for allocs) to dir/file.
func (p *profiler) fetch(ctx context.Context, kind string, secs int, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", p.url, kind, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	f, err := os.Create(filepath.Join(p.dir, file))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
