package deploy_test

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// kubernetesPath is the cluster manifest, from this package's directory.
const kubernetesPath = "kubernetes/blockgate.yaml"

// object is the part of a Kubernetes object the invariants look at.
type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		// Service
		ClusterIP                string         `json:"clusterIP"`
		PublishNotReadyAddresses bool           `json:"publishNotReadyAddresses"`
		Selector                 map[string]any `json:"selector"` // a Service's labels, or matchLabels
		Ports                    []struct {
			Name       string `json:"name"`
			Port       int    `json:"port"`
			TargetPort string `json:"targetPort"`
		} `json:"ports"`
		// PodDisruptionBudget
		MaxUnavailable int `json:"maxUnavailable"`
		// StatefulSet
		ServiceName         string `json:"serviceName"`
		Replicas            int    `json:"replicas"`
		PodManagementPolicy string `json:"podManagementPolicy"`
		Template            struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Containers []container `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type container struct {
	Env []struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `json:"name"`
				Key  string `json:"key"`
			} `json:"secretKeyRef"`
			FieldRef *struct {
				FieldPath string `json:"fieldPath"`
			} `json:"fieldRef"`
		} `json:"valueFrom"`
	} `json:"env"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	ReadinessProbe struct {
		HTTPGet struct {
			Path string `json:"path"`
			Port string `json:"port"`
		} `json:"httpGet"`
	} `json:"readinessProbe"`
}

func loadKubernetes(t *testing.T) map[string]*object {
	t.Helper()
	b, err := os.ReadFile(kubernetesPath)
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]*object{}
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		var o object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("%s: %v", kubernetesPath, err)
		}
		key := o.Kind + "/" + o.Metadata.Name
		if _, dup := objs[key]; dup {
			t.Fatalf("%s: %s twice", kubernetesPath, key)
		}
		objs[key] = &o
	}
	return objs
}

// env is a container's environment: plain values, and "secret:KEY" or
// "field:PATH" for values from elsewhere.
func (c container) env() map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			out[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Key
		case e.ValueFrom.FieldRef != nil:
			out[e.Name] = "field:" + e.ValueFrom.FieldRef.FieldPath
		}
	}
	return out
}

func (c container) port(name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// TestKubernetesCluster checks what a three-node cluster needs of the
// manifest: peers named after every pod through a headless Service that
// lists pods before they are ready, shared secrets, readiness on /readyz.
func TestKubernetesCluster(t *testing.T) {
	objs := loadKubernetes(t)
	sts := objs["StatefulSet/blockgate"]
	if sts == nil {
		t.Fatalf("%s has no StatefulSet blockgate", kubernetesPath)
	}
	n := sts.Spec.Replicas
	if n < 3 || n%2 == 0 {
		t.Errorf("replicas %d: a cluster wants an odd number, at least 3", n)
	}
	if sts.Spec.PodManagementPolicy != "Parallel" {
		t.Errorf("podManagementPolicy %q: the nodes must start together (each waits for a majority)", sts.Spec.PodManagementPolicy)
	}
	if len(sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(sts.Spec.Template.Spec.Containers))
	}
	c := sts.Spec.Template.Spec.Containers[0]
	env := c.env()

	peers := objs["Service/"+sts.Spec.ServiceName]
	if peers == nil {
		t.Fatalf("serviceName %q is not a Service of the manifest", sts.Spec.ServiceName)
	}
	if peers.Spec.ClusterIP != "None" || !peers.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: want headless (clusterIP None) with publishNotReadyAddresses: nodes are ready only once they reach each other",
			sts.Spec.ServiceName)
	}
	routes := c.port("routes")
	if routes == 0 {
		t.Fatal("the container has no routes port")
	}
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("%s-%d.%s:%d", sts.Metadata.Name, i, sts.Spec.ServiceName, routes))
	}
	if got := strings.Split(env["BLOCKGATE_CLUSTER_PEERS"], ","); !slices.Equal(got, want) {
		t.Errorf("BLOCKGATE_CLUSTER_PEERS %v, want every pod's route address %v", got, want)
	}
	if env["BLOCKGATE_NODE_NAME"] != "field:metadata.name" {
		t.Errorf("BLOCKGATE_NODE_NAME %q, want the pod's name", env["BLOCKGATE_NODE_NAME"])
	}
	for _, key := range []string{"BLOCKGATE_POSTGRES_URL", "BLOCKGATE_ADMIN_TOKEN", "BLOCKGATE_CLUSTER_SECRET", "BLOCKGATE_CA_MASTER_KEY"} {
		if !strings.HasPrefix(env[key], "secret:") {
			t.Errorf("%s must come from the shared secret, got %q", key, env[key])
		}
	}
	if env["BLOCKGATE_CLUSTER_NAME"] == "" {
		t.Error("no BLOCKGATE_CLUSTER_NAME")
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.port(c.ReadinessProbe.HTTPGet.Port) != 8080 {
		t.Errorf("readiness %s on %s: want /readyz on the admin port", c.ReadinessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Port)
	}

	// The balanced Service carries the APIs and xDS to ports the container has.
	api := objs["Service/blockgate"]
	if api == nil {
		t.Fatal("no Service blockgate")
	}
	if env["BLOCKGATE_PUBLIC_HOST"] != api.Metadata.Name {
		t.Errorf("BLOCKGATE_PUBLIC_HOST %q, want the balanced Service %s", env["BLOCKGATE_PUBLIC_HOST"], api.Metadata.Name)
	}
	names := map[string]bool{}
	for _, p := range api.Spec.Ports {
		names[p.Name] = true
		if c.port(p.TargetPort) != p.Port {
			t.Errorf("Service port %s %d goes to %q, which the container does not serve on %d", p.Name, p.Port, p.TargetPort, p.Port)
		}
	}
	for _, p := range []string{"dapr-http", "dapr-grpc", "xds", "admin"} {
		if !names[p] {
			t.Errorf("Service blockgate lacks port %s", p)
		}
	}
	for key, svc := range objs {
		if !strings.HasPrefix(key, "Service/") {
			continue
		}
		sel := map[string]string{}
		for k, v := range svc.Spec.Selector {
			sel[k] = fmt.Sprint(v)
		}
		if !maps.Equal(sel, sts.Spec.Template.Metadata.Labels) {
			t.Errorf("%s selects %v, the pods are labelled %v", key, sel, sts.Spec.Template.Metadata.Labels)
		}
	}
	if pdb := objs["PodDisruptionBudget/blockgate"]; pdb == nil || pdb.Spec.MaxUnavailable != 1 {
		t.Error("want a PodDisruptionBudget blockgate with maxUnavailable 1: a majority must stay up")
	}
}
