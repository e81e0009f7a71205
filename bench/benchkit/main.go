package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Main runs a benchmark command's run under a context that SIGINT and
// SIGTERM cancel, and exits 1 with the error, saying when it came from an
// interruption. Flag mistakes are the caller's to report (exit 2) before.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	interrupted := ctx.Err() != nil // before stop, which cancels ctx
	stop()
	if err != nil {
		if interrupted {
			err = fmt.Errorf("interrupted (%w)", err)
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
