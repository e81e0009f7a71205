package benchkit

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Environment describes the machine and the software measured.
type Environment struct {
	CPUs     int    `json:"cpus"`
	GOOS     string `json:"goos"`
	GOARCH   string `json:"goarch"`
	Go       string `json:"go"`
	Postgres string `json:"postgres"`
	Gateway  string `json:"gateway_version"`
}

// NewProgress returns a printf that writes one line to stderr, prefixed
// with the benchmark's name.
func NewProgress(name string) func(format string, args ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
	}
}

// CPURow is one line of a CPU table: a phase's CPU per operation.
type CPURow struct {
	Name, Side string
	CPU        *CPUStats
}

// PrintCPUTable writes a table of CPU time per operation by process, under
// title, with nameCol and "side" as the headings of the first two columns.
// The gateway column is the gateway process, with the NATS server it
// embeds. Rows without CPU numbers are left out; with none, nothing is
// written.
func PrintCPUTable(w io.Writer, title, nameCol string, rows []CPURow) {
	nw, sw := utf8.RuneCountInString(nameCol), len("side")
	some := false
	for _, r := range rows {
		if r.CPU != nil {
			some = true
			nw, sw = max(nw, utf8.RuneCountInString(r.Name)), max(sw, utf8.RuneCountInString(r.Side))
		}
	}
	if !some {
		return
	}
	fmt.Fprintf(w, "\n%s\n\n", title)
	fmt.Fprintf(w, "%s  %s  %6s  %7s  %8s  %5s  %5s  %10s\n",
		Pad(nameCol, nw), Pad("side", sw), "client", "gateway", "postgres", "other", "total", "cores busy")
	for _, r := range rows {
		if c := r.CPU; c != nil {
			fmt.Fprintf(w, "%s  %s  %6.0f  %7.0f  %8.0f  %5.0f  %5.0f  %10.2f\n", Pad(r.Name, nw), Pad(r.Side, sw),
				c.ClientUsPerOp, c.GatewayUsPerOp, c.PostgresUsPerOp, c.OtherUsPerOp, c.Total(), c.CoresBusy)
		}
	}
}

// CPUNote is a phase's CPU split for a progress line, "" without one.
func CPUNote(c *CPUStats) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("  cpu/op client %.0fµs gw %.0fµs pg %.0fµs other %.0fµs",
		c.ClientUsPerOp, c.GatewayUsPerOp, c.PostgresUsPerOp, c.OtherUsPerOp)
}

// OtherWarn is the share of a phase's CPU time taken by other processes
// above which a report says the machine was busy.
const OtherWarn = 0.10

// OtherShare is the largest share of CPU time that processes other than
// the client, the gateway and Postgres took in any of the phases.
func OtherShare(phases ...*CPUStats) float64 {
	var share float64
	for _, c := range phases {
		if c != nil && c.Total() > 0 {
			share = max(share, c.OtherUsPerOp/c.Total())
		}
	}
	return share
}

// PrintBusyNote warns, if share is above OtherWarn, that other processes
// took that share of some phase's CPU time.
func PrintBusyNote(w io.Writer, share float64) {
	if share > OtherWarn {
		fmt.Fprintf(w, "\nnote: other processes used up to %.0f%% of the CPU time in a phase; the machine was busy, so\n"+
			"the ratios are less reliable than usual\n", 100*share)
	}
}

// WriteJSON saves v as indented JSON.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing -json: %w", err)
	}
	return nil
}

// GatewayVersion asks the binary for its version.
func GatewayVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// JSONValue returns a JSON object of exactly size bytes (at least 8):
// {"v":"…"} with random letters and digits.
func JSONValue(size int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, size)
	copy(b, `{"v":"`)
	fill := b[len(`{"v":"`) : size-len(`"}`)]
	_, _ = rand.Read(fill)
	for i := range fill {
		fill[i] = alphabet[int(fill[i])%len(alphabet)]
	}
	copy(b[size-len(`"}`):], `"}`)
	return b
}

// Pad pads s with spaces to n characters (not bytes: µ is two).
func Pad(s string, n int) string {
	return s + strings.Repeat(" ", max(0, n-utf8.RuneCountInString(s)))
}

// Thousands formats a rate as a whole number with thousands separators.
func Thousands(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Ms formats a latency in milliseconds with three significant digits.
func Ms(x float64) string {
	switch {
	case x < 1:
		return fmt.Sprintf("%.0fµs", x*1000)
	case x < 10:
		return fmt.Sprintf("%.2fms", x)
	case x < 100:
		return fmt.Sprintf("%.1fms", x)
	}
	return fmt.Sprintf("%.0fms", x)
}
