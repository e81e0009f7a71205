package pubsubjs

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/blocks/pubsub"
)

// lossyProxy forwards TCP connections to a NATS server until Lose, which
// makes the current connections swallow everything sent either way (as a
// server that died without closing its sockets does) and then cuts them.
// Connections made after that are forwarded again.
type lossyProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	losing atomic.Bool
}

func startLossyProxy(t *testing.T, target string) *lossyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go p.pipe(c, up)
			go p.pipe(up, c)
		}
	}()
	return p
}

func (p *lossyProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *lossyProxy) pipe(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !p.losing.Load() {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				to.Close()
			}
			return
		}
	}
}

// Lose swallows everything for d, then cuts the connections.
func (p *lossyProxy) Lose(d time.Duration) {
	p.losing.Store(true)
	time.AfterFunc(d, func() {
		p.cut()
		p.losing.Store(false)
	})
}

func (p *lossyProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestBatchResendsUnansweredEntries: entries of a batch whose PubAcks never
// come (the connection swallowed them, as when the server that led the
// stream is killed) are sent again once the client has reconnected, and
// stored once each.
func TestBatchResendsUnansweredEntries(t *testing.T) {
	e := newEnv(t, Config{})
	proxy := startLossyProxy(t, strings.TrimPrefix(e.srv.ClientURL(), "nats://"))
	nc, err := nats.Connect(proxy.url(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b, err := New(nc, Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	const tenant = "tenant-a"
	msg := func(id string) pubsub.Message {
		return pubsub.Message{Tenant: tenant, Pubsub: "ps", Topic: "t", ID: id, Data: []byte(id)}
	}
	if err := b.Publish(t.Context(), msg("warm")); err != nil {
		t.Fatal(err)
	}

	msgs := make([]pubsub.Message, 20)
	for i := range msgs {
		msgs[i] = msg(strconv.Itoa(i))
	}
	proxy.Lose(time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second) // under Config.Timeout's 10 s
	defer cancel()
	for i, err := range b.PublishBatch(ctx, msgs) {
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), streamName(tenant))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.State.Msgs, uint64(len(msgs)+1); got != want {
		t.Fatalf("the stream holds %d messages, want %d: each once", got, want)
	}
}
