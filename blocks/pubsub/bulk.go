package pubsub

import (
	"context"
	"sync"
	"time"
)

// BulkSink is a Sink that can take many events in one call (Dapr's bulk
// subscribe). It returns one verdict per event, in order; an error explains
// verdicts that came from a failure of the whole call.
type BulkSink interface {
	DeliverBulk(ctx context.Context, ds []Delivered) ([]Verdict, error)
}

// Dapr's bulk subscribe defaults.
const (
	defaultBulkCount = 100
	defaultBulkAwait = time.Second
)

// batcher gathers deliveries of one bulk subscription and hands them to the
// sink together: when the batch is full or its oldest event has waited the
// subscription's maximum.
type batcher struct {
	h     *handler
	sink  BulkSink
	count int
	await time.Duration

	mu      sync.Mutex
	pending []Delivery
	ready   []Delivered
	timer   *time.Timer
	wg      sync.WaitGroup
}

func newBatcher(h *handler, sink BulkSink, cfg BulkSubscribe) *batcher {
	b := &batcher{h: h, sink: sink, count: int(cfg.MaxMessagesCount), await: time.Duration(cfg.MaxAwaitDurationMs) * time.Millisecond}
	if b.count <= 0 {
		b.count = defaultBulkCount
	}
	if b.await <= 0 {
		b.await = defaultBulkAwait
	}
	return b
}

// add queues one delivery; the call that fills the batch sends it.
func (b *batcher) add(d Delivery) {
	out, ok := b.h.prepare(d)
	if !ok {
		return
	}
	b.mu.Lock()
	b.pending = append(b.pending, d)
	b.ready = append(b.ready, out)
	if len(b.pending) == 1 {
		b.timer = time.AfterFunc(b.await, b.flushFromTimer)
	}
	if len(b.pending) < b.count {
		b.mu.Unlock()
		return
	}
	ds, outs := b.take()
	b.mu.Unlock()
	b.send(ds, outs)
}

// take empties the batch; b.mu must be held.
func (b *batcher) take() ([]Delivery, []Delivered) {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	ds, outs := b.pending, b.ready
	b.pending, b.ready = nil, nil
	return ds, outs
}

func (b *batcher) flushFromTimer() {
	b.mu.Lock()
	ds, outs := b.take()
	b.mu.Unlock()
	if len(ds) > 0 {
		b.wg.Add(1)
		defer b.wg.Done()
		b.send(ds, outs)
	}
}

// send delivers one batch and settles every delivery in it.
func (b *batcher) send(ds []Delivery, outs []Delivered) {
	verdicts, err := b.sink.DeliverBulk(b.h.ctx, outs)
	for i, d := range ds {
		v := Retry
		if i < len(verdicts) {
			v = verdicts[i]
		}
		b.h.settle(d, v, err)
	}
}

// close waits for a batch the timer is sending; batches still queued are
// left unsettled, and the broker redelivers them.
func (b *batcher) close() {
	b.mu.Lock()
	if b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
	b.wg.Wait()
}
