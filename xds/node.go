package xds

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/blockgate/blockgate/tenants"
)

// Keys of the node metadata (Node.metadata in Envoy's bootstrap, "node":
// {"metadata": ...} in a gRPC xDS bootstrap) that the server reads. All are
// optional; TENANT, APP_ID and INSTANCE, when given, must repeat what the
// node id says.
const (
	MetaTenant   = "TENANT"
	MetaApp      = "APP_ID"
	MetaInstance = "INSTANCE"
	// MetaAppPort is the port on 127.0.0.1 where an Envoy node's app
	// listens: the inbound listener forwards there. Without it the node
	// gets no inbound listener.
	MetaAppPort = "APP_PORT"
	// MetaProxyless set to true (or "true") marks a proxyless gRPC client.
	// Without it a node is proxyless when its user agent is gRPC's
	// ("gRPC Go", "gRPC C-core", ...); Envoy's is "envoy".
	MetaProxyless = "PROXYLESS"
)

// Node is a client of the xDS server as its node id and metadata describe
// it. The id is "<tenant>/<app-id>/<instance>": the tenant's name, the
// app's Dapr app id and a name for the instance that is unique among the
// app's nodes (a hostname, a pod name, a registered instance id). Tenant
// names and app ids cannot contain '/', and the instance is held to the
// app id rules, so the id splits one way only.
type Node struct {
	ID       string
	Tenant   tenants.ID
	App      string
	Instance string
	// Proxyless is true for a gRPC client that reads xDS itself (see
	// MetaProxyless); its snapshot has another shape than an Envoy's.
	Proxyless bool
	// AppPort is MetaAppPort, 0 when not given.
	AppPort int
}

// NodeID is the node id of an instance of an app: tenant/app/instance.
func NodeID(tenant tenants.ID, app, instance string) string {
	return string(tenant) + "/" + app + "/" + instance
}

// ParseNodeID splits a node id into its tenant, app id and instance, and
// checks each.
func ParseNodeID(id string) (tenants.ID, string, string, error) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("node id %q is not <tenant>/<app-id>/<instance>", id)
	}
	tenant, err := tenants.ParseID(parts[0])
	if err != nil {
		return "", "", "", fmt.Errorf("node id %q: %w", id, err)
	}
	if err := tenants.ValidateAppID(parts[1]); err != nil {
		return "", "", "", fmt.Errorf("node id %q: %w", id, err)
	}
	if err := tenants.ValidateAppID(parts[2]); err != nil {
		return "", "", "", fmt.Errorf("node id %q: instance: %w", id, err)
	}
	return tenant, parts[1], parts[2], nil
}

// ParseNode reads the identity and options of an xDS client from the node
// it sends.
func ParseNode(n *core.Node) (Node, error) {
	if n.GetId() == "" {
		return Node{}, errors.New("the request names no node id: set node.id to <tenant>/<app-id>/<instance>")
	}
	tenant, app, instance, err := ParseNodeID(n.GetId())
	if err != nil {
		return Node{}, err
	}
	out := Node{ID: n.GetId(), Tenant: tenant, App: app, Instance: instance}
	md := n.GetMetadata().GetFields()
	for key, want := range map[string]string{MetaTenant: string(tenant), MetaApp: app, MetaInstance: instance} {
		if v, ok := md[key]; ok && metaString(v) != want {
			return Node{}, fmt.Errorf("node %s: metadata %s is %q, but the node id says %q", n.GetId(), key, metaString(v), want)
		}
	}
	if v, ok := md[MetaAppPort]; ok {
		port, err := strconv.Atoi(metaString(v))
		if err != nil || port < 1 || port > 65535 {
			return Node{}, fmt.Errorf("node %s: metadata %s %q is not a port number", n.GetId(), MetaAppPort, metaString(v))
		}
		out.AppPort = port
	}
	if v, ok := md[MetaProxyless]; ok {
		switch metaString(v) {
		case "true", "1":
			out.Proxyless = true
		case "false", "0", "":
		default:
			return Node{}, fmt.Errorf("node %s: metadata %s %q is not true or false", n.GetId(), MetaProxyless, metaString(v))
		}
	} else {
		out.Proxyless = strings.HasPrefix(strings.ToLower(n.GetUserAgentName()), "grpc")
	}
	return out, nil
}

// metaString is a metadata value as text: strings as they are, numbers
// without a fraction, booleans as true/false.
func metaString(v *structpb.Value) string {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'f', -1, 64)
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	}
	return ""
}
