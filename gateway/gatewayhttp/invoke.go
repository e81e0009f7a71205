package gatewayhttp

import (
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/blocks/invoke"
)

const invokePrefix = "/v1.0/invoke/"

// appIDHeader rewrites a request that names its target in the dapr-app-id
// header, Dapr's second form of invocation: the path is the method.
func appIDHeader(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		id := r.Header.Get("dapr-app-id")
		// Paths of the Dapr API itself are never invocations.
		if id == "" || strings.HasPrefix(r.URL.Path, "/v1.0") || r.URL.Path == "/.well-known/jwks.json" {
			return next(c)
		}
		escaped := strings.TrimPrefix(r.URL.EscapedPath(), "/")
		r.URL.Path = invokePrefix + id + "/method/" + strings.TrimPrefix(r.URL.Path, "/")
		r.URL.RawPath = invokePrefix + id + "/method/" + escaped
		return next(c)
	}
}

// copyBuffers hold the buffers that invocation responses stream through:
// one per response in flight, reused rather than left to the collector.
var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

// invokeMethod is the escaped method path of an invocation URL.
func invokeMethod(r *http.Request, appID string) string {
	p := r.URL.EscapedPath()
	return strings.TrimPrefix(p, invokePrefix+appID+"/method/")
}

func (s *server) invoke(c echo.Context) error {
	r := c.Request()
	appID := c.Param("appid")
	resp, err := s.cfg.Invoke.Invoke(r.Context(), principal(c), invoke.Call{
		Target: appID, Verb: r.Method, Method: invokeMethod(r, appID), RawQuery: r.URL.RawQuery,
		Header: r.Header, Body: r.Body, ContentLength: r.ContentLength, RemoteAddr: r.RemoteAddr, Host: r.Host,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	h := c.Response().Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	c.Response().WriteHeader(resp.Status)
	// Stream the answer, flushing as it comes, so that a long or large
	// response neither waits nor piles up in the gateway.
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := c.Response().Write(buf[:n]); werr != nil {
				return nil // the caller went away
			}
			c.Response().Flush()
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			s.logger.Warn("invocation response cut short", "target", appID, "err", rerr)
			return nil
		}
	}
}
