// Package admin is the platform's administration: tenants, apps, app
// tokens, components and signing keys, as a transport-agnostic Service and
// the REST API (Handler) that the CLI and the console use.
//
// The admin API is served on its own port (default 8080), never on the Dapr
// API ports. It knows two roles (see Handler and roles.go): the platform
// admin, with the gateway's admin token, and tenant admins, with opaque
// tokens for one tenant that a platform admin issues (see AdminTokenPrefix
// for why they are not JWTs). Every request that changes something is
// written to the audit log (see audit.go).
package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authjwt"
	"github.com/blockgate/blockgate/blocks/invoke/invokeresiliency"
	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// ComponentValidator checks a component of a block kind it knows; it returns
// an error that names what is wrong.
type ComponentValidator func(c tenants.Component) error

// Revoker is told at once about tokens revoked on this node.
type Revoker interface {
	MarkRevoked(id string)
}

// Service performs admin operations. It is safe for concurrent use.
type Service struct {
	registry   *tenantspg.Registry
	authority  *authjwt.Authority
	revoker    Revoker
	validators map[string]ComponentValidator // by block kind: "state"
	logger     *slog.Logger
	now        func() time.Time
	ca         *authca.CA
	defaults   tenants.Limits
	cluster    Cluster
	sidecars   Sidecars
}

// SetDefaultLimits gives the service the gateway's default quotas, for
// the counts it enforces (apps, subscriptions). Call it before serving.
func (s *Service) SetDefaultLimits(l tenants.Limits) { s.defaults = l }

// checkQuota refuses to add one more of what when the tenant has limit or
// more already (limit from the tenant's quotas, else the defaults). The
// count is read before the insert, so concurrent adds may overshoot by the
// number of racing requests.
func (s *Service) checkQuota(ctx context.Context, id tenants.ID, what string, limit func(tenants.Limits) int, count func() (int, error)) error {
	t, err := s.registry.Tenant(ctx, id)
	if err != nil {
		return err
	}
	max := limit(t.Limits.Or(s.defaults))
	if max <= 0 {
		return nil
	}
	n, err := count()
	if err != nil {
		return err
	}
	if n >= max {
		return &apiError{http.StatusTooManyRequests, "ERR_QUOTA_EXCEEDED",
			fmt.Sprintf("tenant %s has %d %s, its quota; delete some or ask the platform admin to raise it", id, n, what)}
	}
	return nil
}

// NewService returns the admin service. validators maps a block kind
// ("state", "pubsub") to the validator of its components; a component of a
// kind with no validator is refused.
func NewService(reg *tenantspg.Registry, a *authjwt.Authority, rev Revoker, validators map[string]ComponentValidator, logger *slog.Logger) *Service {
	return &Service{registry: reg, authority: a, revoker: rev, validators: validators,
		logger: logger.With("component", "admin"), now: time.Now}
}

// Errors a caller can act on; the REST API maps them to statuses.
var (
	ErrInvalid = errors.New("invalid request")
)

func invalid(err error) error { return fmt.Errorf("%w: %w", ErrInvalid, err) }

// CreateTenant adds a tenant.
func (s *Service) CreateTenant(ctx context.Context, name string) (tenants.Tenant, error) {
	id, err := tenants.ParseID(name)
	if err != nil {
		return tenants.Tenant{}, invalid(err)
	}
	t, err := s.registry.CreateTenant(ctx, id)
	if err == nil {
		s.logger.Info("tenant created", "tenant", id)
	}
	return t, err
}

// Tenants lists tenants.
func (s *Service) Tenants(ctx context.Context) ([]tenants.Tenant, error) {
	return s.registry.Tenants(ctx)
}

// Tenant returns one tenant.
func (s *Service) Tenant(ctx context.Context, name string) (tenants.Tenant, error) {
	id, err := tenants.ParseID(name)
	if err != nil {
		return tenants.Tenant{}, invalid(err)
	}
	return s.registry.Tenant(ctx, id)
}

// SetLimits replaces a tenant's quotas; a zero field means the gateway's
// default. Every node applies them at once.
func (s *Service) SetLimits(ctx context.Context, name string, l tenants.Limits) error {
	id, err := tenants.ParseID(name)
	if err != nil {
		return invalid(err)
	}
	if l.PubsubMaxBytes < 0 {
		return invalid(fmt.Errorf("pubsubMaxBytes must not be negative"))
	}
	if l.PubsubMaxBytes > 0 && l.PubsubMaxBytes < 1<<20 {
		return invalid(fmt.Errorf("pubsubMaxBytes %d is below the minimum of 1 MiB", l.PubsubMaxBytes))
	}
	if err := l.Validate(); err != nil {
		return invalid(err)
	}
	if err := s.registry.SetLimits(ctx, id, l); err != nil {
		return err
	}
	s.logger.Info("tenant limits set", "tenant", id, "limits", l)
	return nil
}

// DeleteTenant removes a tenant, its apps, components and state, and
// revokes its tokens.
func (s *Service) DeleteTenant(ctx context.Context, name string) error {
	id, err := tenants.ParseID(name)
	if err != nil {
		return invalid(err)
	}
	toks, err := s.registry.Tokens(ctx, id)
	if err != nil {
		return err
	}
	if err := s.registry.DeleteTenant(ctx, id); err != nil {
		return err
	}
	for _, t := range toks {
		s.revoker.MarkRevoked(t.ID)
	}
	s.logger.Info("tenant deleted", "tenant", id)
	return nil
}

// CreateApp registers an app in a tenant. appToken, when set, is sent to
// the app's endpoint with every call the gateway makes to it.
func (s *Service) CreateApp(ctx context.Context, tenant, appID, endpoint, appToken string) (tenants.App, error) {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return tenants.App{}, invalid(err)
	}
	if err := tenants.ValidateAppID(appID); err != nil {
		return tenants.App{}, invalid(err)
	}
	if err := validateEndpoint(endpoint); err != nil {
		return tenants.App{}, invalid(err)
	}
	if appToken != "" && endpoint == "" {
		return tenants.App{}, invalid(fmt.Errorf("an app token is sent to the app's endpoint: register one with it"))
	}
	if strings.ContainsAny(appToken, "\r\n") || len(appToken) > 4096 {
		return tenants.App{}, invalid(fmt.Errorf("the app token must be one line of at most 4096 characters"))
	}
	if err := s.checkQuota(ctx, id, "apps", func(l tenants.Limits) int { return l.MaxApps }, func() (int, error) {
		apps, err := s.registry.Apps(ctx, id)
		return len(apps), err
	}); err != nil {
		return tenants.App{}, err
	}
	return s.registry.CreateApp(ctx, tenants.App{Tenant: id, ID: appID, Endpoint: endpoint, AppToken: appToken})
}

// Apps lists a tenant's apps.
func (s *Service) Apps(ctx context.Context, tenant string) ([]tenants.App, error) {
	id, err := s.existing(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return s.registry.Apps(ctx, id)
}

// AppliedApp is the result of ApplyApp.
type AppliedApp struct {
	App     tenants.App `json:"app"`
	Created bool        `json:"created"`
}

// ApplyApp registers an app from a declarative resource (blockgate's App
// or Dapr's HTTPEndpoint, YAML or JSON), creating it or replacing its
// endpoints, health check and headers.
func (s *Service) ApplyApp(ctx context.Context, tenant string, doc []byte) (AppliedApp, error) {
	tid, err := tenants.ParseID(tenant)
	if err != nil {
		return AppliedApp{}, invalid(err)
	}
	a, err := tenants.ParseApp(doc)
	if err != nil {
		return AppliedApp{}, invalid(err)
	}
	a.Tenant = tid
	if err := s.checkQuota(ctx, tid, "apps", func(l tenants.Limits) int { return l.MaxApps }, func() (int, error) {
		apps, err := s.registry.Apps(ctx, tid)
		for _, have := range apps {
			if have.ID == a.ID {
				return 0, err // a replacement adds nothing
			}
		}
		return len(apps), err
	}); err != nil {
		return AppliedApp{}, err
	}
	created, err := s.registry.ApplyApp(ctx, a)
	if err != nil {
		return AppliedApp{}, err
	}
	s.logger.Info("app applied", "tenant", tid, "app_id", a.ID, "instances", len(a.Endpoints()), "created", created)
	return AppliedApp{App: a, Created: created}, nil
}

// AddInstance registers (or moves) a further instance of an app.
func (s *Service) AddInstance(ctx context.Context, tenant, appID, id, endpoint string) error {
	tid, err := tenants.ParseID(tenant)
	if err != nil {
		return invalid(err)
	}
	if err := tenants.ValidateAppID(id); err != nil {
		return invalid(fmt.Errorf("instance id: %w", err))
	}
	if endpoint == "" {
		return invalid(fmt.Errorf("an instance needs an endpoint"))
	}
	if err := validateEndpoint(endpoint); err != nil {
		return invalid(err)
	}
	return s.registry.AddInstance(ctx, tid, appID, tenants.Instance{ID: id, Endpoint: endpoint})
}

// RemoveInstance removes an instance of an app.
func (s *Service) RemoveInstance(ctx context.Context, tenant, appID, id string) error {
	tid, err := tenants.ParseID(tenant)
	if err != nil {
		return invalid(err)
	}
	return s.registry.RemoveInstance(ctx, tid, appID, id)
}

// SetHealth sets how the gateway checks an app's instances; an empty path
// turns the checks off.
func (s *Service) SetHealth(ctx context.Context, tenant, appID string, h tenants.HealthCheck) error {
	tid, err := tenants.ParseID(tenant)
	if err != nil {
		return invalid(err)
	}
	if h.Interval == 0 {
		h.Interval = 5 * time.Second
	}
	if h.Threshold == 0 {
		h.Threshold = 3
	}
	switch {
	case h.Path != "" && !strings.HasPrefix(h.Path, "/"):
		return invalid(fmt.Errorf("health path %q must start with /", h.Path))
	case h.Interval < 100*time.Millisecond || h.Interval > time.Hour:
		return invalid(fmt.Errorf("health interval %s is out of range: use 100ms to 1h", h.Interval))
	case h.Threshold < 1 || h.Threshold > 100:
		return invalid(fmt.Errorf("health threshold %d is out of range: use 1 to 100", h.Threshold))
	}
	return s.registry.SetHealth(ctx, tid, appID, h)
}

// DeleteApp removes an app and revokes its tokens.
func (s *Service) DeleteApp(ctx context.Context, tenant, appID string) error {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return invalid(err)
	}
	toks, err := s.registry.Tokens(ctx, id)
	if err != nil {
		return err
	}
	if err := s.registry.DeleteApp(ctx, id, appID); err != nil {
		return err
	}
	for _, t := range toks {
		if t.AppID == appID {
			s.revoker.MarkRevoked(t.ID)
		}
	}
	return nil
}

// DefaultTokenTTL is the lifetime of a token issued without one.
const DefaultTokenTTL = 24 * time.Hour

// IssuedToken is a new token: the only time its text is shown.
type IssuedToken struct {
	tenants.Token
	Text string `json:"token"`
}

// IssueToken signs a new app token for an existing app.
func (s *Service) IssueToken(ctx context.Context, tenant, appID string, ttl time.Duration) (IssuedToken, error) {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return IssuedToken{}, invalid(err)
	}
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < time.Minute || ttl > authjwt.MaxTokenTTL {
		return IssuedToken{}, invalid(fmt.Errorf("token ttl %s is out of range: use 1m to %s", ttl, authjwt.MaxTokenTTL))
	}
	now := s.now().Truncate(time.Second)
	t := tenants.Token{ID: newTokenID(), Tenant: id, AppID: appID, IssuedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.registry.CreateToken(ctx, t); err != nil {
		return IssuedToken{}, err
	}
	text, err := s.authority.Issue(authjwt.Claims{Tenant: id, AppID: appID, TokenID: t.ID, IssuedAt: t.IssuedAt, ExpiresAt: t.ExpiresAt})
	if err != nil {
		return IssuedToken{}, fmt.Errorf("signing token: %w", err)
	}
	s.logger.Info("token issued", "tenant", id, "app_id", appID, "token_id", t.ID, "expires_at", t.ExpiresAt)
	return IssuedToken{Token: t, Text: text}, nil
}

func newTokenID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "tok_" + hex.EncodeToString(b[:])
}

// Tokens lists a tenant's tokens (never their text).
func (s *Service) Tokens(ctx context.Context, tenant string) ([]tenants.Token, error) {
	id, err := s.existing(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return s.registry.Tokens(ctx, id)
}

// RevokeToken revokes a token by id; it stops working on this node at once
// and on every other node when the registry's notification reaches it.
func (s *Service) RevokeToken(ctx context.Context, id string) (tenants.Token, error) {
	t, err := s.registry.RevokeToken(ctx, id)
	if err != nil {
		return t, err
	}
	s.revoker.MarkRevoked(id)
	s.logger.Info("token revoked", "tenant", t.Tenant, "app_id", t.AppID, "token_id", id)
	return t, nil
}

// ApplyComponent creates or replaces a tenant's component from a Dapr
// Component document (YAML or JSON).
func (s *Service) ApplyComponent(ctx context.Context, tenant string, doc []byte) (tenants.Component, error) {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return tenants.Component{}, invalid(err)
	}
	c, err := tenants.ParseComponent(doc)
	if err != nil {
		return tenants.Component{}, invalid(err)
	}
	c.Tenant = id
	validate, ok := s.validators[c.Kind()]
	if !ok {
		return tenants.Component{}, invalid(fmt.Errorf("component %s: blockgate does not serve %q components yet", c.Name, c.Type))
	}
	if err := validate(c); err != nil {
		return tenants.Component{}, invalid(err)
	}
	c, err = s.registry.PutComponent(ctx, c)
	if err == nil {
		s.logger.Info("component applied", "tenant", id, "component", c.Name, "type", c.Type, "revision", c.Revision)
	}
	return c, err
}

// Components lists a tenant's components.
func (s *Service) Components(ctx context.Context, tenant string) ([]tenants.Component, error) {
	id, err := s.existing(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return s.registry.Components(ctx, id)
}

// DeleteComponent removes a tenant's component.
func (s *Service) DeleteComponent(ctx context.Context, tenant, name string) error {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return invalid(err)
	}
	return s.registry.DeleteComponent(ctx, id, name)
}

// RotateSigningKey makes a new key sign tokens from now on; tokens signed
// by older keys keep working until they expire.
func (s *Service) RotateSigningKey(ctx context.Context) (string, error) {
	kid, err := s.authority.Rotate(ctx)
	if err == nil {
		s.logger.Info("token signing key rotated", "kid", kid)
	}
	return kid, err
}

// existing parses tenant and checks it exists, so that listing the apps of
// a tenant that is not there is a 404 rather than an empty list.
func (s *Service) existing(ctx context.Context, tenant string) (tenants.ID, error) {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return "", invalid(err)
	}
	if _, err := s.registry.Tenant(ctx, id); err != nil {
		return "", err
	}
	return id, nil
}

// Subscription is a declarative subscription as the admin API shows it.
type Subscription struct {
	Name     string          `json:"name"`
	Pubsub   string          `json:"pubsubname"`
	Topic    string          `json:"topic"`
	Revision int64           `json:"revision"`
	Document json.RawMessage `json:"subscription"`
}

func subscriptionView(r tenantspg.SubscriptionRecord) Subscription {
	return Subscription{Name: r.Name, Pubsub: r.Pubsub, Topic: r.Topic, Revision: r.Revision, Document: r.Document}
}

// ApplySubscription creates or replaces a declarative subscription from a
// Dapr Subscription resource (dapr.io/v2alpha1 or v1alpha1, YAML or JSON).
func (s *Service) ApplySubscription(ctx context.Context, tenant string, doc []byte) (Subscription, error) {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return Subscription{}, invalid(err)
	}
	sub, err := pubsub.ParseSubscription(doc)
	if err != nil {
		return Subscription{}, invalid(err)
	}
	if err := s.checkQuota(ctx, id, "subscriptions", func(l tenants.Limits) int { return l.MaxSubscriptions }, func() (int, error) {
		subs, err := s.registry.Subscriptions(ctx, id)
		for _, r := range subs {
			if r.Name == sub.Name {
				return 0, err // a replacement adds nothing
			}
		}
		return len(subs), err
	}); err != nil {
		return Subscription{}, err
	}
	rec, err := s.registry.PutSubscription(ctx, tenantspg.SubscriptionRecord{
		Tenant: id, Name: sub.Name, Pubsub: sub.Pubsub, Topic: sub.Topic, Document: sub.Document(),
	})
	if err != nil {
		return Subscription{}, err
	}
	s.logger.Info("subscription applied", "tenant", id, "subscription", sub.Name, "pubsub", sub.Pubsub, "topic", sub.Topic)
	return subscriptionView(rec), nil
}

// Subscriptions lists a tenant's declarative subscriptions.
func (s *Service) Subscriptions(ctx context.Context, tenant string) ([]Subscription, error) {
	id, err := s.existing(ctx, tenant)
	if err != nil {
		return nil, err
	}
	recs, err := s.registry.Subscriptions(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]Subscription, len(recs))
	for i, r := range recs {
		out[i] = subscriptionView(r)
	}
	return out, nil
}

// DeleteSubscription removes a declarative subscription.
func (s *Service) DeleteSubscription(ctx context.Context, tenant, name string) error {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return invalid(err)
	}
	return s.registry.DeleteSubscription(ctx, id, name)
}

// Resiliency is a Resiliency resource as the admin API shows it.
type Resiliency struct {
	Name     string          `json:"name"`
	Revision int64           `json:"revision"`
	Document json.RawMessage `json:"resiliency"`
}

// ApplyResiliency creates or replaces a tenant's Dapr Resiliency resource
// (dapr.io/v1alpha1, YAML or JSON); it applies to calls to the tenant's apps.
func (s *Service) ApplyResiliency(ctx context.Context, tenant string, doc []byte) (Resiliency, error) {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return Resiliency{}, invalid(err)
	}
	r, err := invokeresiliency.Parse(doc)
	if err != nil {
		return Resiliency{}, invalid(err)
	}
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return Resiliency{}, invalid(err)
	}
	rec, err := s.registry.PutResiliency(ctx, tenantspg.ResiliencyRecord{Tenant: id, Name: r.Name, Document: js})
	if err != nil {
		return Resiliency{}, err
	}
	s.logger.Info("resiliency applied", "tenant", id, "resiliency", r.Name, "revision", rec.Revision)
	return Resiliency{Name: rec.Name, Revision: rec.Revision, Document: rec.Document}, nil
}

// Resiliencies lists a tenant's Resiliency resources.
func (s *Service) Resiliencies(ctx context.Context, tenant string) ([]Resiliency, error) {
	id, err := s.existing(ctx, tenant)
	if err != nil {
		return nil, err
	}
	recs, err := s.registry.Resiliencies(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]Resiliency, len(recs))
	for i, r := range recs {
		out[i] = Resiliency{Name: r.Name, Revision: r.Revision, Document: r.Document}
	}
	return out, nil
}

// DeleteResiliency removes a tenant's Resiliency resource.
func (s *Service) DeleteResiliency(ctx context.Context, tenant, name string) error {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return invalid(err)
	}
	return s.registry.DeleteResiliency(ctx, id, name)
}
