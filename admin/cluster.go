package admin

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// ClusterNode is a live gateway node, as GET /v1/cluster/nodes lists it.
type ClusterNode struct {
	Name string `json:"name"`
	// HTTP, GRPC and Admin are the node's listener addresses as the node
	// itself sees them.
	HTTP    string    `json:"http"`
	GRPC    string    `json:"grpc"`
	Admin   string    `json:"admin"`
	Version string    `json:"version"`
	Started time.Time `json:"startedAt"`
	// LastSeen is when the answering node last heard the node's heartbeat.
	LastSeen time.Time `json:"lastSeen"`
}

// Cluster lists the gateway nodes that are alive.
type Cluster interface {
	// Nodes returns the live nodes, the answering one included, sorted by
	// name. It may be called concurrently; the slice is the caller's.
	Nodes() []ClusterNode
}

// SetCluster gives the service the node's view of its cluster. Call it
// before serving; without it the cluster's nodes are not listed.
func (s *Service) SetCluster(c Cluster) { s.cluster = c }

// ClusterNodes lists the live gateway nodes, as this node sees them.
func (s *Service) ClusterNodes() []ClusterNode {
	if s.cluster == nil {
		return []ClusterNode{}
	}
	return s.cluster.Nodes()
}

func (h *handler) clusterNodes(c echo.Context) error {
	return c.JSON(http.StatusOK, h.svc.ClusterNodes())
}

// readyz answers 200 when the node can serve (HandlerConfig.Ready), 503
// with the reason otherwise.
func (h *handler) readyz(c echo.Context) error {
	if h.cfg.Ready != nil {
		if err := h.cfg.Ready(c.Request().Context()); err != nil {
			return &apiError{http.StatusServiceUnavailable, "ERR_NOT_READY", err.Error()}
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
