package deploy_test

import (
	"bufio"
	"bytes"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/blockgate/blockgate/tenants"
)

// composePath is docker-compose.yml, from this package's directory.
const composePath = "../docker-compose.yml"

// service is the part of a compose service that the invariants look at.
// The file writes commands and lists in their list form, which this reads.
type service struct {
	Image string `json:"image"`
	Build *struct {
		Context    string `json:"context"`
		Dockerfile string `json:"dockerfile"`
		Target     string `json:"target"`
	} `json:"build"`
	Command     []string          `json:"command"`
	Entrypoint  []string          `json:"entrypoint"`
	EnvFile     []string          `json:"env_file"`
	Environment map[string]string `json:"environment"`
	Secrets     []string          `json:"secrets"`
	Volumes     []string          `json:"volumes"`
	NetworkMode string            `json:"network_mode"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Healthcheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`

	env map[string]string // env_file, then environment, as compose merges them
}

type compose struct {
	services map[string]*service
	secrets  map[string]string // name → file, relative to the repository root
}

// loadCompose reads docker-compose.yml (YAML anchors and merge keys
// resolved, as compose resolves them) and each service's environment.
func loadCompose(t *testing.T) *compose {
	t.Helper()
	y, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]*service `json:"services"`
		Secrets  map[string]struct {
			File string `json:"file"`
		} `json:"secrets"`
	}
	if err := yaml.Unmarshal(y, &f); err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}
	c := &compose{services: f.Services, secrets: map[string]string{}}
	for name, s := range f.Secrets {
		c.secrets[name] = s.File
	}
	for name, s := range c.services {
		s.env = map[string]string{}
		for _, ef := range s.EnvFile {
			for k, v := range readEnvFile(t, repoPath(ef)) {
				s.env[k] = v
			}
		}
		for k, v := range s.Environment {
			s.env[k] = v
		}
		if s.Image == "" {
			t.Errorf("service %s names no image", name)
		}
	}
	return c
}

// repoPath is a path of docker-compose.yml (relative to the repository
// root) from this package's directory.
func repoPath(p string) string {
	return filepath.Join("..", filepath.FromSlash(strings.TrimPrefix(p, "./")))
}

// readEnvFile reads a compose env file: KEY=VALUE lines, # comments.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		out[k] = v
	}
	return out
}

// gateways are the names of the services that run blockgate serve, sorted.
func (c *compose) gateways(t *testing.T) []string {
	t.Helper()
	var out []string
	for name, s := range c.services {
		if s.Build != nil && s.Build.Target == "gateway" && len(s.Command) > 0 && s.Command[0] == "serve" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	if len(out) != 3 {
		t.Fatalf("gateway services %v; want 3", out)
	}
	return out
}

// publicHost is the gateways' one --public-host, which must be a service
// (the load balancer).
func (c *compose) publicHost(t *testing.T) string {
	t.Helper()
	h := c.same(t, c.gateways(t), "BLOCKGATE_PUBLIC_HOST")
	if _, ok := c.services[h]; !ok {
		t.Fatalf("BLOCKGATE_PUBLIC_HOST %q is not a service of %s", h, composePath)
	}
	return h
}

// same is the value of env var key, which every service of names must set
// to the same non-empty value.
func (c *compose) same(t *testing.T, names []string, key string) string {
	t.Helper()
	v := c.services[names[0]].env[key]
	if v == "" {
		t.Fatalf("%s: %s is not set", names[0], key)
	}
	for _, n := range names[1:] {
		if got := c.services[n].env[key]; got != v {
			t.Errorf("%s: %s=%q, but %s has %q; every gateway node needs the same", n, key, got, names[0], v)
		}
	}
	return v
}

// hostPath is the file of the repository that a service sees at
// container path p through a bind mount.
func (c *compose) hostPath(t *testing.T, s *service, p string) string {
	t.Helper()
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue
		}
		if parts[1] == p {
			return repoPath(parts[0])
		}
		if rel, ok := strings.CutPrefix(p, parts[1]+"/"); ok {
			return filepath.Join(repoPath(parts[0]), filepath.FromSlash(rel))
		}
	}
	t.Fatalf("no bind mount holds %s (volumes %v)", p, s.Volumes)
	return ""
}

// mountOf is the named volume a service mounts at container path p.
func mountOf(s *service, p string) (volume string, readOnly bool) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == p && !strings.HasPrefix(parts[0], ".") && !strings.HasPrefix(parts[0], "/") {
			return parts[0], len(parts) == 3 && parts[2] == "ro"
		}
	}
	return "", false
}

// configFlag is the file an Envoy service's command passes with -c.
func configFlag(t *testing.T, s *service) string {
	t.Helper()
	if i := slices.Index(s.Command, "-c"); i >= 0 && i+1 < len(s.Command) {
		return s.Command[i+1]
	}
	t.Fatalf("command %q passes no -c", s.Command)
	return ""
}

func joinHostPort(h string, port int) string { return net.JoinHostPort(h, strconv.Itoa(port)) }

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func dependsOn(t *testing.T, name string, s *service, on, condition string) {
	t.Helper()
	if got := s.DependsOn[on].Condition; got != condition {
		t.Errorf("%s depends on %s with condition %q; want %s", name, on, got, condition)
	}
}

// TestComposeCluster checks that the gateway services are one cluster:
// distinct node names, each routed to the others, and the same Postgres,
// CA master key, admin token, route secret, trust domain and public name.
func TestComposeCluster(t *testing.T) {
	c := loadCompose(t)
	gateways := c.gateways(t)
	for _, key := range []string{"BLOCKGATE_CLUSTER_NAME", "BLOCKGATE_POSTGRES_URL", "BLOCKGATE_ADMIN_TOKEN",
		"BLOCKGATE_CLUSTER_SECRET", "BLOCKGATE_TRUST_DOMAIN", "BLOCKGATE_PUBLIC_HOST", "BLOCKGATE_CA_MASTER_KEY_FILE"} {
		c.same(t, gateways, key)
	}

	t.Run("nodes", func(t *testing.T) {
		names := map[string]string{}
		for _, g := range gateways {
			s := c.services[g]
			name := s.env["BLOCKGATE_NODE_NAME"]
			if name == "" {
				t.Errorf("%s: no BLOCKGATE_NODE_NAME", g)
			} else if other, dup := names[name]; dup {
				t.Errorf("%s and %s are both node %q", g, other, name)
			}
			names[name] = g
			peers := map[string]bool{}
			for _, p := range strings.Split(s.env["BLOCKGATE_CLUSTER_PEERS"], ",") {
				peers[strings.TrimSpace(p)] = true
			}
			for _, other := range gateways {
				port := 6222
				if p := c.services[other].env["BLOCKGATE_CLUSTER_PORT"]; p != "" {
					port, _ = strconv.Atoi(p)
				}
				if other != g && !peers[joinHostPort(other, port)] {
					t.Errorf("%s does not route to %s (BLOCKGATE_CLUSTER_PEERS %v)", g, other, keys(peers))
				}
			}
			for p := range peers {
				host, _, err := net.SplitHostPort(p)
				if err != nil || !slices.Contains(gateways, host) {
					t.Errorf("%s: peer %q is not a gateway service's host:port", g, p)
				}
			}
		}
	})

	t.Run("tls", func(t *testing.T) {
		public := c.publicHost(t)
		for _, g := range gateways {
			s := c.services[g]
			if on, _ := strconv.ParseBool(s.env["BLOCKGATE_TLS"]); !on {
				t.Errorf("%s: BLOCKGATE_TLS is off; the sidecars' mTLS to the gateway needs it", g)
			}
			names := strings.Split(s.env["BLOCKGATE_TLS_NAMES"], ",")
			for _, want := range []string{public, g} {
				if !slices.Contains(names, want) {
					t.Errorf("%s: BLOCKGATE_TLS_NAMES %v lacks %s", g, names, want)
				}
			}
			if s.env["BLOCKGATE_XDS_PORT"] != "" && s.env["BLOCKGATE_XDS_PORT"] != "18000" {
				t.Errorf("%s: the load balancer carries xDS on 18000, the node serves it on %s", g, s.env["BLOCKGATE_XDS_PORT"])
			}
		}
	})

	t.Run("postgres", func(t *testing.T) {
		u, err := url.Parse(c.same(t, gateways, "BLOCKGATE_POSTGRES_URL"))
		if err != nil {
			t.Fatal(err)
		}
		pg, ok := c.services[u.Hostname()]
		if !ok {
			t.Fatalf("the Postgres URL's host %s is not a service", u.Hostname())
		}
		if pg.Healthcheck == nil {
			t.Errorf("%s has no healthcheck for the gateways to wait on", u.Hostname())
		}
		for _, g := range gateways {
			dependsOn(t, g, c.services[g], u.Hostname(), "service_healthy")
		}
		// The role and database that the URL names are the ones the init
		// SQL makes, and the role is no superuser (row-level security).
		sql := c.hostPath(t, pg, "/docker-entrypoint-initdb.d/blockgate.sql")
		b, err := os.ReadFile(sql)
		if err != nil {
			t.Fatal(err)
		}
		pw, _ := u.User.Password()
		role := regexp.MustCompile(`CREATE ROLE (\w+) LOGIN PASSWORD '([^']*)'([^;]*);`).FindStringSubmatch(string(b))
		db := regexp.MustCompile(`CREATE DATABASE (\w+) OWNER (\w+);`).FindStringSubmatch(string(b))
		switch {
		case role == nil || db == nil:
			t.Errorf("%s creates no login role and database", sql)
		case role[1] != u.User.Username() || role[2] != pw:
			t.Errorf("%s makes role %s/%s; the URL logs in as %s/%s", sql, role[1], role[2], u.User.Username(), pw)
		case !strings.Contains(role[3], "NOSUPERUSER") || !strings.Contains(role[3], "NOBYPASSRLS"):
			t.Errorf("%s: the role must be NOSUPERUSER NOBYPASSRLS so that row-level security applies", sql)
		case db[1] != path.Base(u.Path) || db[2] != role[1]:
			t.Errorf("%s makes database %s owned by %s; the URL wants %s", sql, db[1], db[2], path.Base(u.Path))
		}
	})

	t.Run("ca master key", func(t *testing.T) {
		file := c.same(t, gateways, "BLOCKGATE_CA_MASTER_KEY_FILE")
		name, ok := strings.CutPrefix(file, "/run/secrets/")
		if !ok {
			t.Fatalf("BLOCKGATE_CA_MASTER_KEY_FILE %s is not a compose secret", file)
		}
		for _, g := range gateways {
			if !slices.Contains(c.services[g].Secrets, name) {
				t.Errorf("%s does not mount secret %s", g, name)
			}
			if c.services[g].env["BLOCKGATE_CA_MASTER_KEY"] != "" {
				t.Errorf("%s sets BLOCKGATE_CA_MASTER_KEY too; the node refuses both", g)
			}
		}
		src, ok := c.secrets[name]
		if !ok {
			t.Fatalf("secret %s is not defined", name)
		}
		b, err := os.ReadFile(repoPath(src))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(bytes.TrimSpace(b)); n < 32 {
			t.Errorf("%s holds a %d-byte key; the gateway wants at least 32", src, n)
		}
	})
}

// TestComposeSidecars checks the apps: each has one Envoy sidecar in its
// network namespace, started with the bootstrap that the init job writes
// for it, and the init job writes bootstraps for exactly those apps, whose
// registrations point at them.
func TestComposeSidecars(t *testing.T) {
	c := loadCompose(t)
	public := c.publicHost(t)

	var apps []string
	for name, s := range c.services {
		if s.Build != nil && s.Build.Target == "examples" {
			apps = append(apps, name)
		}
	}
	slices.Sort(apps)
	if len(apps) < 2 {
		t.Fatalf("sample apps %v; want orders and checkout", apps)
	}

	var initName string
	for name, s := range c.services {
		if slices.Contains(s.Entrypoint, "/compose/init.sh") {
			if initName != "" {
				t.Fatalf("both %s and %s run init.sh", initName, name)
			}
			initName = name
		}
	}
	if initName == "" {
		t.Fatal("no service runs /compose/init.sh")
	}
	initJob := c.services[initName]
	bootstrapVolume, ro := mountOf(initJob, "/bootstrap")
	if bootstrapVolume == "" || ro {
		t.Fatalf("%s does not mount a writable volume at /bootstrap", initName)
	}
	for _, g := range c.gateways(t) {
		dependsOn(t, initName, initJob, g, "service_healthy")
	}
	if admin := initJob.env["BLOCKGATE_ADMIN_URL"]; admin == "" || initJob.env["BLOCKGATE_ADMIN_TOKEN"] == "" {
		t.Errorf("%s: BLOCKGATE_ADMIN_URL and BLOCKGATE_ADMIN_TOKEN are needed", initName)
	}
	script, err := os.ReadFile(c.hostPath(t, initJob, "/compose/init.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`for app in $APPS`, `blockgate envoy bootstrap --tenant "$TENANT" --app "$app" --app-port "$APP_PORT"`, `-o "/bootstrap/$app.yaml"`} {
		if !bytes.Contains(script, []byte(want)) {
			t.Errorf("init.sh no longer says %s", want)
		}
	}
	bootstrapped := strings.Fields(initJob.env["APPS"])
	slices.Sort(bootstrapped)
	appPort := initJob.env["APP_PORT"]

	var withSidecar []string
	for _, app := range apps {
		t.Run(app, func(t *testing.T) {
			var sidecars []string
			for name, s := range c.services {
				if s.NetworkMode == "service:"+app {
					sidecars = append(sidecars, name)
				}
			}
			if len(sidecars) != 1 {
				t.Fatalf("services in %s's network namespace: %v; want its one sidecar", app, sidecars)
			}
			name := sidecars[0]
			sc := c.services[name]
			withSidecar = append(withSidecar, app)
			repo, tag, _ := strings.Cut(sc.Image, ":")
			if repo != "envoyproxy/envoy" || tag == "" || tag == "latest" {
				t.Errorf("%s runs %q; want envoyproxy/envoy at a pinned tag", name, sc.Image)
			}
			if got := configFlag(t, sc); got != "/bootstrap/"+app+".yaml" {
				t.Errorf("%s starts with %s; the init job writes /bootstrap/%s.yaml", name, got, app)
			}
			if v, _ := mountOf(sc, "/bootstrap"); v != bootstrapVolume {
				t.Errorf("%s mounts %q at /bootstrap; the init job writes to volume %s", name, v, bootstrapVolume)
			}
			dependsOn(t, name, sc, initName, "service_completed_successfully")
			dependsOn(t, name, sc, public, "service_started")

			a := c.services[app]
			if a.env["PORT"] != appPort {
				t.Errorf("%s listens on %q; its sidecar forwards to --app-port %s", app, a.env["PORT"], appPort)
			}
			if ep := a.env["DAPR_HTTP_ENDPOINT"]; ep != "" && ep != "http://127.0.0.1:3500" {
				t.Errorf("%s: DAPR_HTTP_ENDPOINT %s is not its sidecar", app, ep)
			}
			// The registration the init job applies: the app by its name,
			// at the service whose namespace the sidecar shares.
			doc, err := os.ReadFile(c.hostPath(t, initJob, "/compose/apps/"+app+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			reg, err := tenants.ParseApp(doc)
			if err != nil {
				t.Fatalf("apps/%s.yaml: %v", app, err)
			}
			if reg.ID != app {
				t.Errorf("apps/%s.yaml registers app %s", app, reg.ID)
			}
			for _, ep := range reg.Endpoints() {
				u, err := url.Parse(ep)
				if err != nil || u.Hostname() != app || u.Port() != appPort {
					t.Errorf("apps/%s.yaml: an instance at %s; want http://%s:%s", app, ep, app, appPort)
				}
			}
		})
	}
	slices.Sort(withSidecar)
	if !slices.Equal(withSidecar, bootstrapped) {
		t.Errorf("the init job bootstraps %v (APPS), but the apps with sidecars are %v", bootstrapped, withSidecar)
	}

	t.Run("components", func(t *testing.T) {
		doc, err := os.ReadFile(c.hostPath(t, initJob, "/compose/statestore.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		comp, err := tenants.ParseComponent(doc)
		if err != nil {
			t.Fatal(err)
		}
		if comp.Name != "statestore" || comp.Kind() != "state" {
			t.Errorf("statestore.yaml is %s (%s); checkout saves to the state store statestore", comp.Name, comp.Type)
		}
	})
}
