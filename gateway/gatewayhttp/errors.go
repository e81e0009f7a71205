package gatewayhttp

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/blocks"
)

// errorBody is Dapr's HTTP error shape.
type errorBody struct {
	ErrorCode string `json:"errorCode"`
	Message   string `json:"message"`
}

// handleError is the one place where errors become HTTP responses.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		// Routing errors from echo itself: unknown path or method.
		code := "ERR_NOT_FOUND"
		if he.Code == http.StatusMethodNotAllowed {
			code = "ERR_METHOD_NOT_ALLOWED"
		}
		_ = c.JSON(he.Code, errorBody{ErrorCode: code, Message: http.StatusText(he.Code) + ": " + c.Request().Method + " " + c.Request().URL.Path})
		return
	}
	e := blocks.As(err)
	status := e.HTTPStatus
	if status == 0 {
		status = http.StatusInternalServerError
	}
	msg := e.Message
	if status >= 500 {
		// The client gets an id to quote; the log line has the detail.
		id := errorID()
		msg += " (error id " + id + ")"
		s.logger.Error("request failed", "error_id", id, "code", e.Code, "method", c.Request().Method,
			"path", c.Request().URL.Path, "err", err)
	}
	if secs := e.Metadata[blocks.MetaRetryAfterSeconds]; secs != "" {
		c.Response().Header().Set("Retry-After", secs)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, errorBody{ErrorCode: e.Code, Message: msg})
}

func errorID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
