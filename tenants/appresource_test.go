package tenants

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseApp(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    App
		wantErr string
	}{
		{
			name: "blockgate App with instances, health, headers and token",
			doc: `apiVersion: blockgate.io/v1alpha1
kind: App
metadata: {name: orders}
spec:
  instances:
  - {id: a, endpoint: "http://10.0.0.5:8080"}
  - {endpoint: "http://10.0.0.6:8080"}
  healthCheck: {path: /healthz, intervalSeconds: 2}
  headers: [{name: x-env, value: prod}]
  appToken: {value: s3cret}`,
			want: App{ID: "orders", Endpoint: "http://10.0.0.5:8080",
				Instances: []Instance{{ID: "instance-1", Endpoint: "http://10.0.0.6:8080"}},
				Health:    HealthCheck{Path: "/healthz", Interval: 2 * time.Second, Threshold: 3},
				Headers:   map[string]string{"X-Env": "prod"}, AppToken: "s3cret"},
		},
		{
			name: "gRPC app",
			doc:  `{"apiVersion":"blockgate.io/v1alpha1","kind":"App","metadata":{"name":"billing"},"spec":{"instances":[{"endpoint":"grpc://billing:50051"}]}}`,
			want: App{ID: "billing", Endpoint: "grpc://billing:50051"},
		},
		{
			name: "Dapr HTTPEndpoint",
			doc: `apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {name: github}
spec:
  baseUrl: https://api.github.com/v3
  headers:
  - {name: Accept, value: application/json}`,
			want: App{ID: "github", Endpoint: "https://api.github.com/v3", Headers: map[string]string{"Accept": "application/json"}},
		},
		{name: "unknown field", doc: `{"apiVersion":"blockgate.io/v1alpha1","kind":"App","metadata":{"name":"a"},"spec":{"instances":[{"endpoint":"http://a"}],"replicas":3}}`, wantErr: "replicas"},
		{name: "other kind", doc: `{"apiVersion":"dapr.io/v1alpha1","kind":"Component","metadata":{"name":"a"},"spec":{}}`, wantErr: "not an app resource"},
		{name: "no instance", doc: `{"apiVersion":"blockgate.io/v1alpha1","kind":"App","metadata":{"name":"a"},"spec":{"instances":[]}}`, wantErr: "at least one instance"},
		{name: "bad name", doc: `{"apiVersion":"blockgate.io/v1alpha1","kind":"App","metadata":{"name":"../etc"},"spec":{"instances":[{"endpoint":"http://a"}]}}`, wantErr: "metadata.name"},
		{name: "bad endpoint scheme", doc: `{"apiVersion":"blockgate.io/v1alpha1","kind":"App","metadata":{"name":"a"},"spec":{"instances":[{"endpoint":"file:///etc/passwd"}]}}`, wantErr: "endpoint"},
		{name: "credentials in endpoint", doc: `{"apiVersion":"blockgate.io/v1alpha1","kind":"App","metadata":{"name":"a"},"spec":{"instances":[{"endpoint":"http://u:p@a"}]}}`, wantErr: "without credentials"},
		{name: "mixed protocols", doc: `{"apiVersion":"blockgate.io/v1alpha1","kind":"App","metadata":{"name":"a"},"spec":{"instances":[{"endpoint":"http://a"},{"endpoint":"grpc://b:1"}]}}`, wantErr: "one protocol"},
		{name: "duplicate instance id", doc: `{"apiVersion":"blockgate.io/v1alpha1","kind":"App","metadata":{"name":"a"},"spec":{"instances":[{"id":"x","endpoint":"http://a"},{"id":"x","endpoint":"http://b"}]}}`, wantErr: "twice"},
		{name: "health path without slash", doc: `{"apiVersion":"blockgate.io/v1alpha1","kind":"App","metadata":{"name":"a"},"spec":{"instances":[{"endpoint":"http://a"}],"healthCheck":{"path":"healthz"}}}`, wantErr: "must start with /"},
		{name: "header the gateway sets", doc: `{"apiVersion":"dapr.io/v1alpha1","kind":"HTTPEndpoint","metadata":{"name":"a"},"spec":{"baseUrl":"http://a","headers":[{"name":"dapr-api-token","value":"x"}]}}`, wantErr: "set by the gateway"},
		{name: "header with line break", doc: `{"apiVersion":"dapr.io/v1alpha1","kind":"HTTPEndpoint","metadata":{"name":"a"},"spec":{"baseUrl":"http://a","headers":[{"name":"X-A","value":"a\r\nEvil: 1"}]}}`, wantErr: "line break"},
		{name: "invalid header name", doc: `{"apiVersion":"dapr.io/v1alpha1","kind":"HTTPEndpoint","metadata":{"name":"a"},"spec":{"baseUrl":"http://a","headers":[{"name":"X A","value":"1"}]}}`, wantErr: "not a valid header name"},
		{name: "secret reference", doc: `{"apiVersion":"dapr.io/v1alpha1","kind":"HTTPEndpoint","metadata":{"name":"a"},"spec":{"baseUrl":"http://a","headers":[{"name":"X-Key","secretKeyRef":{"name":"s","key":"k"}}]}}`, wantErr: "secretKeyRef"},
		{name: "client TLS", doc: `{"apiVersion":"dapr.io/v1alpha1","kind":"HTTPEndpoint","metadata":{"name":"a"},"spec":{"baseUrl":"https://a","clientTLS":{"rootCA":{"value":"x"}}}}`, wantErr: "clientTLS"},
		{name: "HTTPEndpoint to gRPC", doc: `{"apiVersion":"dapr.io/v1alpha1","kind":"HTTPEndpoint","metadata":{"name":"a"},"spec":{"baseUrl":"grpc://a:1"}}`, wantErr: "baseUrl"},
		{name: "not YAML", doc: "\t: :", wantErr: "neither YAML nor JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseApp([]byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseApp(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"blockgate.io/v1alpha1","kind":"App","metadata":{"name":"a"},"spec":{"instances":[{"endpoint":"http://a"}],"headers":[{"name":"X","value":"1"}]}}`))
	f.Add([]byte("apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: x}\nspec: {baseUrl: 'https://x/y'}"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		a, err := ParseApp(doc)
		if err != nil {
			return
		}
		if ValidateAppID(a.ID) != nil {
			t.Fatalf("accepted app id %q", a.ID)
		}
		for _, ep := range a.Endpoints() {
			if ValidateEndpoint(ep) != nil {
				t.Fatalf("accepted endpoint %q", ep)
			}
		}
		for k, v := range a.Headers {
			if !validHeaderName(k) || strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("accepted header %q: %q", k, v)
			}
		}
	})
}
