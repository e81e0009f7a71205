package gatewaysidecars

import (
	"regexp"
	"testing"

	"github.com/blockgate/blockgate/tenants"
)

// kvKeyRE is what JetStream accepts as a key (nats.go's validKeyRe).
var kvKeyRE = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

func TestKey(t *testing.T) {
	tests := []struct {
		name string
		sc   Sidecar
		want string
	}{
		{"plain", Sidecar{Tenant: "acme", App: "orders", Node: "gw-1", Instance: "o-1"}, "acme.orders.gw-1.o-1"},
		{"dots and underscores", Sidecar{Tenant: "acme", App: "pay.v2_eu", Node: "blockgate-0.svc", Instance: "pod_7.x"},
			"acme.pay=2Ev2_eu.blockgate-0=2Esvc.pod_7=2Ex"},
		{"escape and wildcards", Sidecar{Tenant: "a", App: "b=c", Node: "n/1", Instance: "*>"}, "a.b=3Dc.n=2F1.=2A=3E"},
		{"not ascii", Sidecar{Tenant: "a", App: "é", Node: "n", Instance: " "}, "a.=C3=A9.n.=20"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.sc.Key()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Key() = %q, want %q", got, tc.want)
			}
			back, err := ParseKey(got)
			if err != nil || back != tc.sc {
				t.Fatalf("ParseKey(%q) = %+v, %v; want %+v", got, back, err, tc.sc)
			}
		})
	}
}

func TestKeyRefuses(t *testing.T) {
	if _, err := (Sidecar{Tenant: "acme", App: "orders", Node: "gw"}).Key(); err == nil {
		t.Error("a sidecar without instance made a key")
	}
	for _, key := range []string{
		"", "a.b.c", "a.b.c.d.e", "a..c.d", "a.b.c.=", "a.b.c.=4", "a.b.c.=4g", "a.b.c.=41", // =41 is 'A', written plain
		"a.b.c.=2e", // lower-case hex
	} {
		if sc, err := ParseKey(key); err == nil {
			t.Errorf("ParseKey(%q) = %+v, want an error", key, sc)
		}
	}
}

// FuzzKey: every sidecar makes a valid JetStream key with one token per
// part, which reads back as the same sidecar; ParseKey accepts only such
// keys.
func FuzzKey(f *testing.F) {
	f.Add("acme", "pay.v2_eu", "gw-1", "o.1")
	f.Add("a", "=", "/", "é")
	f.Fuzz(func(t *testing.T, tenant, app, node, instance string) {
		sc := Sidecar{Tenant: tenants.ID(tenant), App: app, Node: node, Instance: instance}
		key, err := sc.Key()
		if tenant == "" || app == "" || node == "" || instance == "" {
			if err == nil {
				t.Fatalf("%+v: key %q from an empty part", sc, key)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !kvKeyRE.MatchString(key) {
			t.Fatalf("%+v: %q is not a valid key", sc, key)
		}
		back, err := ParseKey(key)
		if err != nil || back != sc {
			t.Fatalf("ParseKey(%q) = %+v, %v; want %+v", key, back, err, sc)
		}
		// Any key that parses is the key of what it parses to.
		if p, err := ParseKey(instance); err == nil {
			if k, _ := p.Key(); k != instance {
				t.Fatalf("ParseKey(%q) = %+v, whose key is %q", instance, p, k)
			}
		}
	})
}
