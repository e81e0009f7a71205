package tenantsrate

import "math/bits"

// maxSpan bounds every span of time a bucket computes with (about 36
// years): a bucket's debt is capped there, and with clock readings below
// 2^61 ns no sum of two spans and a reading overflows an int64.
const maxSpan = 1 << 60

// bucket is a token bucket in GCRA form: rather than a token count and the
// time it was counted, it keeps one number, tat (the theoretical arrival
// time), the instant at which the bucket will be full again. At time now it
// holds burst - (tat-now)/interval tokens, or burst when tat <= now. That
// makes a bucket one integer, exact (no float rounding, so a wait is exact
// to the nanosecond), and tells at a glance whether it is full, which is
// what eviction needs.
//
// Times are nanoseconds since the limiter's epoch. A bucket is guarded by
// the mutex of the tenant entry that holds it.
type bucket struct {
	tat int64
	// p are the limits tat was computed under; a bucket rescales itself
	// when it is used under different ones.
	p params
}

// newBucket returns a full bucket.
func newBucket(p params, now int64) bucket { return bucket{tat: now, p: p} }

// wait returns how long from now until the bucket holds enough tokens for
// cost under p; zero or less means the request conforms now. A cost above
// the burst needs only a full bucket (see take). wait first rescales the
// bucket if p changed.
func (b *bucket) wait(p params, now, cost int64) int64 {
	if b.p != p {
		b.rescale(p, now)
	}
	if p.unlimited() {
		return 0
	}
	need := min(cost, p.burst)
	return max(b.tat, now) - mulSat(p.burst-need, p.interval) - now
}

// take spends cost tokens; the caller has seen wait(...) <= 0. A cost above
// the burst leaves the bucket in debt, so that a large request is admitted
// once the bucket is full rather than refused forever, and the long-run rate
// still holds: the debt is paid back before anything else passes.
func (b *bucket) take(now, cost int64) {
	if b.p.unlimited() {
		return
	}
	b.tat = min(max(b.tat, now)+mulSat(cost, b.p.interval), now+maxSpan)
}

// full reports whether the bucket has been full since at least before; a
// full bucket is indistinguishable from a new one, so dropping it loses
// nothing.
func (b *bucket) full(before int64) bool { return b.tat <= before }

// rescale moves the bucket to new limits keeping the tokens it holds (up to
// the new burst), not its fill ratio: raising a limit never hands out a
// fresh burst, and lowering one never leaves more than the new burst. Debt
// carries over too. With tokens = oldBurst - debt/oldInterval, the new debt
// is (newBurst - min(tokens, newBurst)) * newInterval.
func (b *bucket) rescale(p params, now int64) {
	old := b.p
	b.p = p
	if old.unlimited() || p.unlimited() {
		// From no limit there are no tokens to keep: start full.
		b.tat = now
		return
	}
	debt := max(b.tat-now, 0)
	d := mulSat(p.burst, p.interval) - mulSat(old.burst, p.interval) + mulDivSat(debt, p.interval, old.interval)
	b.tat = now + min(max(d, 0), maxSpan)
}

// mulSat returns a*b for a, b >= 0, saturated at maxSpan.
func mulSat(a, b int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > maxSpan {
		return maxSpan
	}
	return int64(lo)
}

// mulDivSat returns a*b/c for a, b >= 0 and c > 0, saturated at maxSpan.
func mulDivSat(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(c) {
		return maxSpan
	}
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(min(q, maxSpan))
}
