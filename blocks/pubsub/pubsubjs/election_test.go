package pubsubjs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestUntilAnswered: a request is sent again, each attempt bounded, while
// JetStream leaves it unanswered (no stream leader, no meta leader), until
// it is answered or the request's time is up; any other answer is final.
func TestUntilAnswered(t *testing.T) {
	errBad := errors.New("bad request")
	tests := []struct {
		name    string
		timeout time.Duration // Config.Timeout
		ctxTime time.Duration // the caller's deadline; 0 for none
		answers []error       // what each attempt gets; the last repeats
		want    error
		calls   int // attempts expected; 0 for at least two
	}{
		{"answered", time.Second, 0, []error{nil}, nil, 1},
		{"no stream leader for a while", time.Second, 0, []error{jetstream.ErrNoStreamResponse, jetstream.ErrNoStreamResponse, nil}, nil, 3},
		{"an attempt left unanswered", time.Second, 0, []error{context.DeadlineExceeded, nil}, nil, 2},
		{"refused", time.Second, 0, []error{errBad}, errBad, 1},
		{"no leader within Config.Timeout", 300 * time.Millisecond, 0, []error{jetstream.ErrNoStreamResponse}, jetstream.ErrNoStreamResponse, 0},
		{"no leader within the caller's deadline", time.Minute, 300 * time.Millisecond, []error{jetstream.ErrNoStreamResponse}, jetstream.ErrNoStreamResponse, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Broker{cfg: Config{Timeout: tt.timeout}}
			ctx := t.Context()
			if tt.ctxTime > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTime)
				defer cancel()
			}
			calls := 0
			err := b.untilAnswered(ctx, func(ctx context.Context) error {
				if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > attemptTimeout {
					t.Errorf("attempt %d has no deadline within %s", calls+1, attemptTimeout)
				}
				err := tt.answers[min(calls, len(tt.answers)-1)]
				calls++
				return err
			})
			if !errors.Is(err, tt.want) || err != nil && tt.want == nil {
				t.Fatalf("untilAnswered: %v, want %v", err, tt.want)
			}
			if tt.calls > 0 && calls != tt.calls || tt.calls == 0 && calls < 2 {
				t.Errorf("%d attempts, want %d (0: at least two)", calls, tt.calls)
			}
		})
	}
}
