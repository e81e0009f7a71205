package admin

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// auditWriteTimeout bounds writing one audit entry.
const auditWriteTimeout = 5 * time.Second

// maxAuditField bounds the path and target kept in an entry.
const maxAuditField = 512

// audited reports whether requests with method change something and so go
// to the audit log.
func audited(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// audit is the outermost middleware. It writes an audit entry for every
// request that may change something, whatever becomes of it: refused by
// authorize (401, 403), failed in its handler, or panicking (answered 500).
// To know the status, it answers an error itself (through the one error
// handler) before writing the entry; the entry is written after the answer,
// with a context that the client going away does not cancel.
//
// If the entry cannot be written, the action stands (it has happened
// already, and refusing the next ones would let a Postgres hiccup stop
// administration): the failure is logged at error level, rate-limited, and
// counted in HandlerConfig.AuditFailures, which should be alerted on.
func (h *handler) audit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		req := requestOf(c)
		defer func() {
			if v := recover(); v != nil {
				h.logger.Error("admin handler panicked", "method", c.Request().Method, "path", c.Request().URL.Path,
					"panic", v, "stack", string(debug.Stack()))
				err = &apiError{http.StatusInternalServerError, "ERR_INTERNAL", "internal error; see the gateway's log"}
			}
			if !audited(c.Request().Method) {
				return
			}
			if err != nil {
				c.Error(err)
				err = nil
			}
			h.writeAudit(c, req)
		}()
		return next(c)
	}
}

func (h *handler) writeAudit(c echo.Context, req *request) {
	e := tenantspg.AuditEntry{
		ActorRole:    "anonymous",
		Method:       c.Request().Method,
		Path:         truncate(c.Request().URL.Path),
		TargetTenant: req.targetTenant,
		Target:       req.target,
		Status:       c.Response().Status,
		ClientAddr:   c.RealIP(),
	}
	if req.route != nil {
		e.Route = req.route.path
	}
	if e.Target == "" && req.route != nil {
		e.Target = pathTarget(c)
	}
	e.Target = truncate(e.Target)
	p := req.principal
	switch p.Role {
	case RolePlatform:
		e.ActorRole, e.ActorID, e.Tenant = string(p.Role), p.TokenID, req.targetTenant
	case RoleTenant:
		// A tenant admin's requests go to its own tenant's log, attempts on
		// other tenants included: those are the tenant's business, not the
		// other tenant's.
		e.ActorRole, e.ActorID, e.ActorName, e.Tenant = string(p.Role), p.TokenID, p.Name, p.Tenant
	default:
		e.Tenant = req.targetTenant
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), auditWriteTimeout)
	defer cancel()
	if err := h.svc.registry.WriteAudit(ctx, e); err != nil {
		h.auditFailed(e, err)
	}
}

// auditFailed counts and logs (rate-limited) an audit entry that could not
// be written, with everything it would have said.
func (h *handler) auditFailed(e tenantspg.AuditEntry, err error) {
	if h.cfg.AuditFailures != nil {
		h.cfg.AuditFailures.Inc()
	}
	h.auditLogMu.Lock()
	suppressed, ok := h.auditLogLimit.Allow(time.Now())
	h.auditLogMu.Unlock()
	if !ok {
		return
	}
	h.logger.Error("AUDIT LOG WRITE FAILED: the admin action stands but is not in the audit log",
		"actor_role", e.ActorRole, "actor_id", e.ActorID, "tenant", e.Tenant, "method", e.Method, "route", e.Route,
		"path", e.Path, "target", e.Target, "status", e.Status, "client_addr", e.ClientAddr,
		"err", err, "suppressed", suppressed)
}

// pathTarget names the object of a request from its path parameters other
// than the tenant, joined by '/' (an app id, "app/instance", a token id).
func pathTarget(c echo.Context) string {
	var parts []string
	for i, name := range c.ParamNames() {
		if name == "tenant" {
			continue
		}
		if vals := c.ParamValues(); i < len(vals) {
			parts = append(parts, vals[i])
		}
	}
	return strings.Join(parts, "/")
}

func truncate(s string) string {
	if len(s) > maxAuditField {
		return s[:maxAuditField]
	}
	return s
}

// Default and largest page of GET /v1/audit.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// listAudit answers GET /v1/audit?tenant=T&limit=N&before=TIME. A tenant
// admin reads its own tenant's log whatever it asks (authorize has refused
// a request naming another).
func (h *handler) listAudit(c echo.Context) error {
	tenant, err := queryTenant(c)
	if err != nil {
		return err
	}
	if p := principalOf(c); p.Role != RolePlatform {
		tenant = p.Tenant
	}
	q := tenantspg.AuditQuery{Tenant: tenant, Limit: defaultAuditLimit}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxAuditLimit {
			return invalid(fmt.Errorf("limit %q is not a number from 1 to %d", s, maxAuditLimit))
		}
		q.Limit = n
	}
	if s := c.QueryParam("before"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return invalid(fmt.Errorf("before %q is not an RFC 3339 time like 2026-01-02T15:04:05Z", s))
		}
		q.Before = t
	}
	entries, err := h.svc.AuditLog(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, nonNil(entries))
}
