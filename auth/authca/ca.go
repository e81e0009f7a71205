package authca

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults of Config.
const (
	DefaultSVIDTTL       = 24 * time.Hour
	DefaultRootTTL       = 365 * 24 * time.Hour
	DefaultCheckInterval = time.Hour
)

// retiredSlack is added to a retired generation's trust beyond the longest
// certificate lifetime: for clocks that disagree, and for a node that signs
// with a generation for a moment after another node retired it (until the
// change notification makes it reload).
const retiredSlack = 10 * time.Minute

// Config configures a CA. TrustDomain, Store and MasterKey are required.
type Config struct {
	// TrustDomain is the SPIFFE trust domain the CA issues for, e.g.
	// "blockgate.example.com". Every node of a cluster must use the same.
	TrustDomain spiffeid.TrustDomain
	// Store holds the generations for every node.
	Store Store
	// MasterKey encrypts the CA's private keys at rest. At least
	// MinMasterKeyLen bytes, the same on every node, read by the caller
	// from a file or an environment variable. New derives what it needs
	// and keeps no reference to it; the caller may clear it afterwards.
	MasterKey []byte
	// Root, when set, is the operator's root CA: each generation's
	// intermediate is made under it instead of under a new self-signed
	// root. Every node of a cluster must be given the same root.
	Root *Root
	// SVIDTTL is the lifetime of an SVID when the caller asks for none, and
	// of ServerCertificate's certificates. Default DefaultSVIDTTL (24h).
	SVIDTTL time.Duration
	// MaxSVIDTTL is the longest lifetime SignCSR grants, and so how long a
	// retired generation's root stays in the bundle after its retirement.
	// Default 7 × SVIDTTL.
	MaxSVIDTTL time.Duration
	// RootTTL is the lifetime of a self-signed root and of each
	// intermediate (an intermediate never outlives its root). Default
	// DefaultRootTTL (one year). At least 4 × MaxSVIDTTL.
	RootTTL time.Duration
	// CheckInterval is how often Run checks whether the active generation
	// is close enough to its end to be replaced. Default
	// DefaultCheckInterval (1h).
	CheckInterval time.Duration
	// Clock is the time. Default time.Now.
	Clock func() time.Time
	// Logger receives the CA's logs; nil discards. No key material is ever
	// logged, only generation ids and master key ids (fingerprints).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.SVIDTTL == 0 {
		c.SVIDTTL = DefaultSVIDTTL
	}
	if c.MaxSVIDTTL == 0 {
		c.MaxSVIDTTL = 7 * c.SVIDTTL
	}
	if c.RootTTL == 0 {
		c.RootTTL = DefaultRootTTL
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports what is wrong with c, defaults applied. New calls it.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.TrustDomain.IsZero() {
		errs = append(errs, errors.New("a trust domain is required"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("a store is required"))
	}
	if len(c.MasterKey) < MinMasterKeyLen {
		errs = append(errs, fmt.Errorf("the master key must be at least %d bytes, not %d", MinMasterKeyLen, len(c.MasterKey)))
	}
	if c.SVIDTTL < time.Minute {
		errs = append(errs, fmt.Errorf("SVID lifetime %s is under a minute", c.SVIDTTL))
	}
	if c.MaxSVIDTTL < c.SVIDTTL {
		errs = append(errs, fmt.Errorf("maximum SVID lifetime %s is under the default SVID lifetime %s", c.MaxSVIDTTL, c.SVIDTTL))
	}
	if c.RootTTL < 4*c.MaxSVIDTTL {
		errs = append(errs, fmt.Errorf("root lifetime %s is under 4 × the maximum SVID lifetime %s", c.RootTTL, c.MaxSVIDTTL))
	}
	if c.CheckInterval < 0 {
		errs = append(errs, fmt.Errorf("negative check interval %s", c.CheckInterval))
	}
	if c.Root != nil && (c.Root.Cert == nil || c.Root.Key == nil) {
		errs = append(errs, errors.New("the operator root needs both a certificate and a key (see ParseRoot)"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("certificate authority config: %w", err)
	}
	return nil
}

// CA is the gateway's certificate authority. Its methods are safe for
// concurrent use; each says what it costs.
type CA struct {
	cfg         Config
	sealer      *sealer
	logger      *slog.Logger
	renewBefore time.Duration
	// retiredTrust is how long a retired generation's root stays trusted.
	retiredTrust time.Duration

	snap atomic.Pointer[snapshot]
	// writeMu serialises the writers of snap: Load, Reload, Rotate and
	// Run's renewals.
	writeMu sync.Mutex
}

// New returns a CA over cfg.Store. It holds no generation until Load.
func New(cfg Config) (*CA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s, err := newSealer(cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	cfg.MasterKey = nil
	c := &CA{
		cfg:          cfg,
		sealer:       s,
		logger:       cfg.Logger.With("component", "authca", "trust_domain", cfg.TrustDomain.Name()),
		renewBefore:  max(cfg.RootTTL/10, 2*cfg.MaxSVIDTTL),
		retiredTrust: cfg.MaxSVIDTTL + retiredSlack,
	}
	c.snap.Store(c.newSnapshot(nil, nil, nil, cfg.Clock()))
	return c, nil
}

// TrustDomain is the trust domain the CA issues for.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.cfg.TrustDomain }

// snapshot is an immutable view of the generations. The hot paths (signing,
// verifying, Bundle) load it and take no lock.
type snapshot struct {
	active *generation // nil before Load
	signer crypto.Signer
	// gens are the trusted generations as of when the snapshot was built,
	// newest first: the active one and the retired ones still in their
	// trust period.
	gens []*generation
	// bundle and pem hold the distinct roots of gens, newest first.
	bundle *x509bundle.Bundle
	pem    []byte
	// changesAt is when the first retired generation in gens leaves the
	// bundle; zero if none will. From then on bundleAt filters.
	changesAt time.Time
}

func (c *CA) newSnapshot(active *generation, signer crypto.Signer, gens []*generation, now time.Time) *snapshot {
	s := &snapshot{active: active, signer: signer}
	for _, g := range gens {
		if g.trustedAt(now) {
			s.gens = append(s.gens, g)
		}
	}
	slices.SortFunc(s.gens, func(a, b *generation) int {
		if c := b.createdAt.Compare(a.createdAt); c != 0 {
			return c
		}
		return cmp.Compare(b.id, a.id)
	})
	for _, g := range s.gens {
		if !g.until.IsZero() && (s.changesAt.IsZero() || g.until.Before(s.changesAt)) {
			s.changesAt = g.until
		}
	}
	s.bundle, s.pem = c.buildBundle(s.gens, now)
	return s
}

// buildBundle collects the distinct roots of the generations trusted at
// now (an operator's root is shared by all its generations).
func (c *CA) buildBundle(gens []*generation, now time.Time) (*x509bundle.Bundle, []byte) {
	var roots []*x509.Certificate
	var buf bytes.Buffer
	for _, g := range gens {
		if !g.trustedAt(now) || slices.ContainsFunc(roots, g.root.Equal) {
			continue
		}
		roots = append(roots, g.root)
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: g.root.Raw}) // cannot fail on a bytes.Buffer
	}
	return x509bundle.FromX509Authorities(c.cfg.TrustDomain, roots), buf.Bytes()
}

// bundleAt is the bundle of the roots trusted at now. It allocates only
// when a retired generation's trust has run out since the snapshot was
// built and no reload has happened since.
func (c *CA) bundleAt(s *snapshot, now time.Time) (*x509bundle.Bundle, []byte) {
	if s.changesAt.IsZero() || now.Before(s.changesAt) {
		return s.bundle, s.pem
	}
	return c.buildBundle(s.gens, now)
}

// Load reads the generations from the store and, when none is active,
// creates the first one. Of several nodes that Load an empty store at
// once, one creates it and the others adopt it (the store's compare-and-
// swap, see Store). If the active generation is close to its end (see the
// package documentation), Load replaces it as Run would. Call it before
// serving; it may be called again.
//
// It fails with ErrWrongMasterKey when the active generation's key was
// sealed with another master key; nothing is created then.
func (c *CA) Load(ctx context.Context) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.reloadLocked(ctx); err != nil {
		return err
	}
	s := c.snap.Load()
	if s.active == nil {
		id, err := c.addGenerationLocked(ctx, "", true)
		if err != nil {
			return err
		}
		if id == "" {
			c.logger.Info("adopted the CA generation another node created", "generation", c.snap.Load().active.id)
		} else {
			c.logger.Info("created the first CA generation", "generation", id)
		}
		return nil
	}
	return c.renewIfDueLocked(ctx, s)
}

// Reload replaces the generations in memory with the store's. The gateway
// calls it when another node changes the CA (a registry notification of
// kind "ca") and on a resync. On error memory is unchanged.
func (c *CA) Reload(ctx context.Context) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.reloadLocked(ctx)
}

func (c *CA) reloadLocked(ctx context.Context) error {
	stored, err := c.cfg.Store.CAGenerations(ctx)
	if err != nil {
		return fmt.Errorf("loading CA generations: %w", err)
	}
	now := c.cfg.Clock()
	var gens []*generation
	var active *generation
	var activeStored Generation
	unretired := 0
	for _, sg := range stored {
		g, err := parseGeneration(sg)
		if err != nil && sg.RetiredAt == nil {
			// Skipping it would leave no signer, and a new generation could
			// not replace it (the store holds it active): say what is wrong.
			return fmt.Errorf("active CA generation %s is unusable: %w", sg.ID, err)
		}
		if err != nil {
			c.logger.Error("skipping unusable retired CA generation", "generation", sg.ID, "err", err)
			continue
		}
		switch {
		case sg.RetiredAt != nil:
			g.until = sg.RetiredAt.Add(c.retiredTrust)
		case active == nil || g.createdAt.After(active.createdAt) ||
			(g.createdAt.Equal(active.createdAt) && g.id > active.id):
			active, activeStored = g, sg
			unretired++
		default:
			unretired++
		}
		gens = append(gens, g)
	}
	if unretired > 1 {
		// The Store contract rules this out; a store that breaks it still
		// gets one signer, the newest, and trust in every unretired root.
		c.logger.Warn("store holds more than one active CA generation; signing with the newest", "generation", active.id, "active", unretired)
	}
	var signer crypto.Signer
	if active != nil {
		if signer, err = c.sealer.openKey(activeStored, active.inter); err != nil {
			return err
		}
	}
	c.snap.Store(c.newSnapshot(active, signer, gens, now))
	return nil
}

// Rotate makes a new generation the signer at once: every certificate this
// node signs from now on chains to it, and other nodes switch when they
// Reload. The previous generation is retired; its root stays in the bundle
// until the certificates it signed have expired (MaxSVIDTTL after the
// retirement, plus a little slack). If another node rotates at the same
// moment, Rotate tries again on top of that node's generation, so that the
// signer after it returns is a generation made after it was called.
// It returns the new generation's id.
func (c *CA) Rotate(ctx context.Context) (string, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	var err error
	for range 3 {
		replaces := ""
		if a := c.snap.Load().active; a != nil {
			replaces = a.id
		}
		var id string
		id, err = c.addGenerationLocked(ctx, replaces, false)
		if err == nil {
			c.logger.Info("rotated the CA", "generation", id, "retired", replaces)
			return id, nil
		}
		if !errors.Is(err, ErrConflict) {
			return "", err
		}
	}
	return "", err
}

// addGenerationLocked makes a generation and stores it in the place of
// replaces. On a conflict it reloads; with adopt it then returns "" and no
// error (another node's generation is as good), else the conflict. After a
// successful add it reloads so that memory shows what the store holds; if
// that reload fails the generation is stored all the same, so it is
// installed in memory by hand rather than failing what happened.
func (c *CA) addGenerationLocked(ctx context.Context, replaces string, adopt bool) (string, error) {
	now := c.cfg.Clock()
	sg, g, signer, err := c.newGeneration(now)
	if err != nil {
		return "", err
	}
	err = c.cfg.Store.AddCAGeneration(ctx, sg, replaces)
	if errors.Is(err, ErrConflict) {
		if rerr := c.reloadLocked(ctx); rerr != nil {
			return "", fmt.Errorf("storing CA generation %s: %w; then reloading: %w", sg.ID, err, rerr)
		}
		if adopt && c.snap.Load().active != nil {
			return "", nil
		}
		return "", fmt.Errorf("storing CA generation %s: %w", sg.ID, err)
	}
	if err != nil {
		return "", fmt.Errorf("storing CA generation %s: %w", sg.ID, err)
	}
	rerr := c.reloadLocked(ctx)
	if rerr == nil {
		return sg.ID, nil
	}
	c.logger.Warn("reloading after adding a CA generation; installing it locally", "generation", sg.ID, "err", rerr)
	old := c.snap.Load()
	gens := []*generation{g}
	for _, o := range old.gens {
		if o.until.IsZero() { // the one the store just retired
			retired := *o
			retired.until = sg.CreatedAt.Add(c.retiredTrust)
			o = &retired
		}
		gens = append(gens, o)
	}
	c.snap.Store(c.newSnapshot(g, signer, gens, now))
	return sg.ID, nil
}

// due reports whether the active generation should be replaced: it ends
// within renewBefore, so that soon the certificates it signs would have to
// be cut short.
func (c *CA) due(s *snapshot, now time.Time) bool {
	return s.active != nil && !now.Before(s.active.inter.NotAfter.Add(-c.renewBefore))
}

func (c *CA) renewIfDueLocked(ctx context.Context, s *snapshot) error {
	now := c.cfg.Clock()
	if !c.due(s, now) {
		return nil
	}
	if r := c.cfg.Root; r != nil && r.Cert.NotAfter.Sub(now) <= c.renewBefore {
		// A new intermediate could not outlive the root by much, and would
		// be due at once: renewing would only churn.
		c.logger.Error("the operator's CA root expires soon; replace it (and restart every node with the new one)",
			"root_not_after", r.Cert.NotAfter, "generation", s.active.id)
		return nil
	}
	id, err := c.addGenerationLocked(ctx, s.active.id, true)
	if err != nil {
		return fmt.Errorf("renewing CA generation %s: %w", s.active.id, err)
	}
	if id == "" {
		c.logger.Info("another node renewed the CA", "retired", s.active.id, "generation", c.snap.Load().active.id)
	} else {
		c.logger.Info("renewed the CA before its end", "retired", s.active.id, "generation", id,
			"retired_not_after", s.active.inter.NotAfter)
	}
	return nil
}

// Run replaces the active generation when it comes within a tenth of its
// lifetime (at least twice MaxSVIDTTL) of its end, checking every
// Config.CheckInterval, until ctx is done. Every node may run it: the
// store lets one node renew and the others adopt its generation. It
// returns nil when ctx is done; failures are logged and retried at the
// next check.
func (c *CA) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.check(ctx)
		}
	}
}

func (c *CA) check(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			c.logger.Error("panic in the CA renewal check", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.renewIfDueLocked(ctx, c.snap.Load()); err != nil && ctx.Err() == nil {
		c.logger.Error("renewing the CA", "err", err)
	}
}

// Bundle is the X.509 bundle of the trust domain: the roots of every
// generation that may still have valid certificates, that is the active
// one and each retired one until MaxSVIDTTL (plus a little slack) after
// its retirement. It is what SVID holders and the gateway's own TLS
// listeners verify against, and what SDS serves as the validation context.
// The bundle is a copy and belongs to the caller. It takes no lock.
func (c *CA) Bundle() *x509bundle.Bundle {
	b, _ := c.bundleAt(c.snap.Load(), c.cfg.Clock())
	return b.Clone()
}

// BundlePEM is Bundle as concatenated PEM CERTIFICATE blocks, newest root
// first. The slice belongs to the caller. It takes no lock.
func (c *CA) BundlePEM() []byte {
	_, p := c.bundleAt(c.snap.Load(), c.cfg.Clock())
	return bytes.Clone(p)
}
