package tenants

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// ValidateEndpoint reports whether endpoint is a base URL the gateway can
// call an app at: http:// or https://, or grpc://host:port (grpcs:// with
// TLS) for an app that speaks Dapr's gRPC app protocol.
func ValidateEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || u.RawQuery != "":
	case u.Scheme == "http" || u.Scheme == "https":
		return nil
	case (u.Scheme == "grpc" || u.Scheme == "grpcs") && (u.Path == "" || u.Path == "/"):
		return nil
	}
	return fmt.Errorf("app endpoint %q must be an http:// or https:// URL without credentials or query, or grpc://host:port (grpcs:// with TLS) for an app that speaks gRPC", endpoint)
}

// appDocument is the wire form of both app resources ParseApp reads.
type appDocument struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

// appSpec is the spec of blockgate's App resource.
type appSpec struct {
	Instances   []Instance     `json:"instances"`
	Headers     []headerItem   `json:"headers,omitempty"`
	HealthCheck *healthSpec    `json:"healthCheck,omitempty"`
	AppToken    *appTokenValue `json:"appToken,omitempty"`
}

type appTokenValue struct {
	Value string `json:"value"`
}

type healthSpec struct {
	Path             string `json:"path"`
	IntervalSeconds  int    `json:"intervalSeconds,omitempty"`
	FailureThreshold int    `json:"failureThreshold,omitempty"`
}

// httpEndpointSpec is the spec of Dapr's HTTPEndpoint resource.
type httpEndpointSpec struct {
	BaseURL   string          `json:"baseUrl"`
	Headers   []headerItem    `json:"headers,omitempty"`
	ClientTLS json.RawMessage `json:"clientTLS,omitempty"`
}

type headerItem struct {
	Name         string          `json:"name"`
	Value        string          `json:"value,omitempty"`
	SecretKeyRef json.RawMessage `json:"secretKeyRef,omitempty"`
}

// ParseApp reads a declarative app registration in YAML or JSON, either
// blockgate's own resource:
//
//	apiVersion: blockgate.io/v1alpha1
//	kind: App
//	metadata: {name: orders}
//	spec:
//	  instances:
//	  - {id: a, endpoint: "http://10.0.0.5:8080"}
//	  - {id: b, endpoint: "http://10.0.0.6:8080"}
//	  healthCheck: {path: /healthz, intervalSeconds: 5, failureThreshold: 3}
//	  headers: [{name: X-Env, value: prod}]
//	  appToken: {value: "..."}   # sent to the app as dapr-api-token
//
// or Dapr's HTTPEndpoint (dapr.io/v1alpha1), which names an external
// service that apps invoke by its name: spec.baseUrl is its one instance
// and spec.headers go with every call. Unknown fields are rejected. The
// returned App has no tenant; the first instance becomes App.Endpoint.
func ParseApp(data []byte) (App, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return App{}, fmt.Errorf("app resource is neither YAML nor JSON: %w", err)
	}
	var doc appDocument
	if err := strictJSON(js, &doc); err != nil {
		return App{}, fmt.Errorf("reading app resource: %w", err)
	}
	var a App
	switch {
	case doc.APIVersion == "blockgate.io/v1alpha1" && doc.Kind == "App":
		a, err = parseAppSpec(doc.Spec)
	case doc.APIVersion == "dapr.io/v1alpha1" && doc.Kind == "HTTPEndpoint":
		a, err = parseHTTPEndpointSpec(doc.Spec)
	default:
		return App{}, fmt.Errorf("%s/%s is not an app resource: want blockgate.io/v1alpha1 App or dapr.io/v1alpha1 HTTPEndpoint", doc.APIVersion, doc.Kind)
	}
	if err != nil {
		return App{}, fmt.Errorf("%s %s: %w", doc.Kind, doc.Metadata.Name, err)
	}
	if err := ValidateAppID(doc.Metadata.Name); err != nil {
		return App{}, fmt.Errorf("metadata.name: %w", err)
	}
	a.ID = doc.Metadata.Name
	return a, nil
}

func strictJSON(js []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func parseAppSpec(raw json.RawMessage) (App, error) {
	var spec appSpec
	if err := strictJSON(raw, &spec); err != nil {
		return App{}, fmt.Errorf("spec: %w", err)
	}
	if len(spec.Instances) == 0 {
		return App{}, fmt.Errorf("spec.instances: an app needs at least one instance with an endpoint")
	}
	var a App
	seen := map[string]bool{}
	for i, in := range spec.Instances {
		if in.ID == "" {
			in.ID = fmt.Sprintf("instance-%d", i)
		}
		if err := ValidateAppID(in.ID); err != nil {
			return App{}, fmt.Errorf("spec.instances[%d].id: %w", i, err)
		}
		if seen[in.ID] {
			return App{}, fmt.Errorf("spec.instances: id %q appears twice", in.ID)
		}
		seen[in.ID] = true
		if err := ValidateEndpoint(in.Endpoint); err != nil {
			return App{}, fmt.Errorf("spec.instances[%d].endpoint: %w", i, err)
		}
		if i == 0 {
			a.Endpoint = in.Endpoint
		} else {
			a.Instances = append(a.Instances, in)
		}
	}
	grpcApp := a.SpeaksGRPC()
	for _, in := range a.Instances {
		if (strings.HasPrefix(in.Endpoint, "grpc")) != grpcApp {
			return App{}, fmt.Errorf("spec.instances: all instances of an app speak one protocol (all http(s):// or all grpc(s)://)")
		}
	}
	headers, err := parseHeaders(spec.Headers)
	if err != nil {
		return App{}, err
	}
	a.Headers = headers
	if h := spec.HealthCheck; h != nil {
		if !strings.HasPrefix(h.Path, "/") {
			return App{}, fmt.Errorf("spec.healthCheck.path %q must start with /", h.Path)
		}
		if h.IntervalSeconds < 0 || h.FailureThreshold < 0 {
			return App{}, fmt.Errorf("spec.healthCheck: intervalSeconds and failureThreshold must not be negative")
		}
		a.Health = HealthCheck{Path: h.Path, Interval: time.Duration(orDefault(h.IntervalSeconds, 5)) * time.Second, Threshold: orDefault(h.FailureThreshold, 3)}
	}
	if spec.AppToken != nil {
		if spec.AppToken.Value == "" {
			return App{}, fmt.Errorf("spec.appToken.value is empty; leave appToken out to send no token")
		}
		a.AppToken = spec.AppToken.Value
	}
	return a, nil
}

// orDefault returns v, or def when v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func parseHTTPEndpointSpec(raw json.RawMessage) (App, error) {
	var spec httpEndpointSpec
	if err := strictJSON(raw, &spec); err != nil {
		return App{}, fmt.Errorf("spec: %w", err)
	}
	if len(spec.ClientTLS) > 0 && string(spec.ClientTLS) != "null" {
		return App{}, fmt.Errorf("spec.clientTLS is not supported: blockgate verifies https endpoints against the system's roots and presents no client certificate")
	}
	u, err := url.Parse(spec.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return App{}, fmt.Errorf("spec.baseUrl %q must be an http:// or https:// URL", spec.BaseURL)
	}
	if err := ValidateEndpoint(spec.BaseURL); err != nil {
		return App{}, fmt.Errorf("spec.baseUrl: %w", err)
	}
	a := App{Endpoint: spec.BaseURL}
	if a.Headers, err = parseHeaders(spec.Headers); err != nil {
		return App{}, err
	}
	return a, nil
}

// parseHeaders checks spec.headers: valid names, no duplicates, literal
// values only, and none of the headers the gateway itself sets.
func parseHeaders(items []headerItem) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(items))
	for i, h := range items {
		if len(h.SecretKeyRef) > 0 && string(h.SecretKeyRef) != "null" {
			return nil, fmt.Errorf("spec.headers[%d] (%s): secretKeyRef is not supported yet; put the value in the resource, which the admin API never shows", i, h.Name)
		}
		name := http.CanonicalHeaderKey(strings.TrimSpace(h.Name))
		if !validHeaderName(name) {
			return nil, fmt.Errorf("spec.headers[%d]: %q is not a valid header name", i, h.Name)
		}
		switch strings.ToLower(name) {
		case "dapr-api-token", "dapr-caller-app-id", "dapr-callee-app-id", "host", "content-length", "transfer-encoding", "connection":
			return nil, fmt.Errorf("spec.headers[%d]: %s is set by the gateway", i, name)
		}
		if strings.ContainsAny(h.Value, "\r\n\x00") {
			return nil, fmt.Errorf("spec.headers[%d] (%s): the value contains a line break or NUL", i, name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("spec.headers: %s appears twice", name)
		}
		out[name] = h.Value
	}
	return out, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r >= 0x80 || !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}
