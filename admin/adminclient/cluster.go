package adminclient

import (
	"context"
	"net/http"
	"time"
)

// ClusterNode is a live gateway node as the admin API lists it.
type ClusterNode struct {
	Name      string    `json:"name"`
	HTTP      string    `json:"http"`
	GRPC      string    `json:"grpc"`
	Admin     string    `json:"admin"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"startedAt"`
	LastSeen  time.Time `json:"lastSeen"`
}

// ClusterNodes lists the live gateway nodes, as the answering node sees
// them (platform admin only).
func (c *Client) ClusterNodes(ctx context.Context) ([]ClusterNode, error) {
	var out []ClusterNode
	err := c.doJSON(ctx, http.MethodGet, "/v1/cluster/nodes", nil, &out)
	return out, err
}

// Ready asks the node's /readyz whether it can serve; nil means ready.
func (c *Client) Ready(ctx context.Context) error {
	return c.doJSON(ctx, http.MethodGet, "/readyz", nil, nil)
}
