package main

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goList lists packages of the module with their imports.
func goList(t *testing.T, args ...string) []struct {
	ImportPath string
	Deps       []string
} {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []struct {
		ImportPath string
		Deps       []string
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestBlocksAreTransportAgnostic enforces the layout's main rule: a block
// never depends on a transport or a driver; only its store adapters (the
// packages named after a backend, like statepg) may use a driver.
func TestBlocksAreTransportAgnostic(t *testing.T) {
	forbidden := []string{"github.com/labstack/echo", "google.golang.org/grpc", "github.com/jackc/pgx", "github.com/nats-io/nats.go"}
	adapters := map[string]bool{
		"github.com/blockgate/blockgate/blocks/state/statepg":   true,
		"github.com/blockgate/blockgate/blocks/pubsub/pubsubjs": true,
	}
	for _, p := range goList(t, "./blocks/...", "./tenants") {
		if adapters[p.ImportPath] {
			continue
		}
		for _, d := range p.Deps {
			for _, f := range forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s", p.ImportPath, d)
				}
			}
		}
	}
}

// TestOnePackageDoc checks that every package has exactly one package doc
// comment.
func TestOnePackageDoc(t *testing.T) {
	docs := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		if _, ok := docs[dir]; !ok {
			docs[dir] = nil
		}
		if f.Doc != nil {
			docs[dir] = append(docs[dir], filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir, files := range docs {
		if len(files) != 1 {
			t.Errorf("package in %s has %d package doc comments (%v); want exactly one", dir, len(files), files)
		}
	}
}
