package gatewayhttp

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/blocks/metadata"
)

func (s *server) healthz(c echo.Context) error {
	if err := s.cfg.Ready(c.Request().Context()); err != nil {
		return blocks.New(blocks.Unavailable, http.StatusInternalServerError, "ERR_HEALTH_NOT_READY",
			"blockgate is not ready: %v", err)
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *server) healthzOutbound(c echo.Context) error {
	return c.NoContent(http.StatusNoContent)
}

func (s *server) jwks(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/jwk-set+json", s.cfg.JWKS())
}

// metadataBody is the JSON of GET /v1.0/metadata, in daprd's field names.
type metadataBody struct {
	ID                      string               `json:"id"`
	RuntimeVersion          string               `json:"runtimeVersion"`
	EnabledFeatures         []string             `json:"enabledFeatures"`
	Actors                  []any                `json:"actors"`
	Components              []metadata.Component `json:"components"`
	Extended                map[string]string    `json:"extended"`
	Subscriptions           []subscriptionBody   `json:"subscriptions"`
	HTTPEndpoints           []any                `json:"httpEndpoints"`
	AppConnectionProperties struct {
		Protocol string `json:"protocol,omitempty"`
	} `json:"appConnectionProperties"`
}

// subscriptionBody is one subscription in daprd's metadata JSON; the default
// route is a rule without a match.
type subscriptionBody struct {
	Pubsub          string            `json:"pubsubname"`
	Topic           string            `json:"topic"`
	DeadLetterTopic string            `json:"deadLetterTopic,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Rules           []ruleBody        `json:"rules"`
	Type            string            `json:"type"`
}

type ruleBody struct {
	Match string `json:"match,omitempty"`
	Path  string `json:"path"`
}

func (s *server) getMetadata(c echo.Context) error {
	md, err := s.cfg.Metadata.Get(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	body := metadataBody{
		ID: md.AppID, RuntimeVersion: md.RuntimeVersion, EnabledFeatures: md.EnabledFeatures,
		Actors: []any{}, Components: md.Components, Extended: md.Extended,
		Subscriptions: make([]subscriptionBody, 0, len(md.Subscriptions)), HTTPEndpoints: []any{},
	}
	for _, a := range md.Subscriptions {
		sb := subscriptionBody{Pubsub: a.Pubsub, Topic: a.Topic, DeadLetterTopic: a.DeadLetterTopic,
			Metadata: a.Metadata, Type: a.Origin, Rules: []ruleBody{}}
		for _, r := range a.Routes.Rules {
			sb.Rules = append(sb.Rules, ruleBody{Match: r.Match, Path: r.Path})
		}
		if a.Routes.Default != "" {
			sb.Rules = append(sb.Rules, ruleBody{Path: a.Routes.Default})
		}
		body.Subscriptions = append(body.Subscriptions, sb)
	}
	body.AppConnectionProperties.Protocol = "http"
	return c.JSON(http.StatusOK, body)
}

func (s *server) putMetadata(c echo.Context) error {
	value, err := s.readBody(c)
	if err != nil {
		return err
	}
	if err := s.cfg.Metadata.Set(c.Request().Context(), principal(c), c.Param("key"), string(value)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
