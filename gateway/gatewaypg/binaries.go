package gatewaypg

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// binEnv names the environment variable that points at a directory holding
// initdb and postgres, overriding the search.
const binEnv = "BLOCKGATE_PG_BIN"

// versionedBinGlob is where Debian and Ubuntu install each major version's
// server programs; they are not on $PATH there.
const versionedBinGlob = "/usr/lib/postgresql/*/bin"

// ErrNoBinaries is returned (wrapped, with where it looked and what to do)
// when no PostgreSQL server programs can be found.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries found")

// binaries are the server programs a private cluster needs.
type binaries struct {
	initdb   string
	postgres string
}

// findBinaries locates initdb and postgres. An explicit directory (binDir,
// else $BLOCKGATE_PG_BIN) is the only place looked in: a mistyped setting
// should fail, not quietly pick other binaries. Otherwise $PATH is searched,
// then versionedBinGlob from the newest version down. When clusterMajor is
// set, the first candidate of that major version wins over the first one.
func findBinaries(binDir, clusterMajor string) (binaries, error) {
	if binDir != "" {
		if b, ok := binariesIn(binDir); ok {
			return b, nil
		}
		return binaries{}, notFound(binDir)
	}
	if dir := os.Getenv(binEnv); dir != "" {
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
		return binaries{}, notFound(fmt.Sprintf("$%s=%s", binEnv, dir))
	}

	var candidates []binaries
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		// Relative entries would depend on the working directory.
		if !filepath.IsAbs(dir) {
			continue
		}
		if b, ok := binariesIn(dir); ok {
			candidates = append(candidates, b)
		}
	}
	for _, dir := range versionedBinDirs() {
		if b, ok := binariesIn(dir); ok {
			candidates = append(candidates, b)
		}
	}
	if len(candidates) == 0 {
		return binaries{}, notFound("$PATH", versionedBinGlob)
	}
	if clusterMajor != "" {
		for _, b := range candidates {
			if v, err := b.version(); err == nil && v.major == clusterMajor {
				return b, nil
			}
		}
	}
	return candidates[0], nil
}

func notFound(places ...string) error {
	return fmt.Errorf("%w (looked in %s); install them (Debian/Ubuntu: apt-get install -y postgresql) or pass --postgres-url",
		ErrNoBinaries, strings.Join(places, ", "))
}

// binariesIn reports whether dir holds both programs. Symbolic links (such as
// /usr/local/bin/initdb pointing into a versioned directory) are resolved, so
// that the paths name the real installation.
func binariesIn(dir string) (binaries, bool) {
	initdb, ok := executable(filepath.Join(dir, "initdb"))
	if !ok {
		return binaries{}, false
	}
	postgres, ok := executable(filepath.Join(dir, "postgres"))
	if !ok {
		return binaries{}, false
	}
	return binaries{initdb: initdb, postgres: postgres}, true
}

// executable returns the resolved path of an executable regular file.
func executable(path string) (string, bool) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", false
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", false
	}
	return real, true
}

// versionedBinDirs lists versionedBinGlob's matches, newest version first.
func versionedBinDirs() []string {
	dirs, _ := filepath.Glob(versionedBinGlob) // the pattern is well-formed
	type versioned struct {
		dir     string
		version float64 // "15", or "9.6" for old releases
	}
	var found []versioned
	for _, dir := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		if err != nil {
			continue
		}
		found = append(found, versioned{dir, v})
	}
	slices.SortFunc(found, func(a, b versioned) int { return cmp.Compare(b.version, a.version) })
	out := make([]string, len(found))
	for i, v := range found {
		out[i] = v.dir
	}
	return out
}

// pgVersion is what `postgres --version` reports.
type pgVersion struct {
	full  string // "15.14"
	major string // "15", as in a cluster's PG_VERSION file
}

var versionPattern = regexp.MustCompile(`\(PostgreSQL\) (\d+)(\.\d+)?`)

func (b binaries) version() (pgVersion, error) {
	// --version is answered before postgres's refusal to run as root.
	out, err := exec.Command(b.postgres, "--version").Output()
	if err != nil {
		return pgVersion{}, fmt.Errorf("running %s --version: %w", b.postgres, err)
	}
	return parseVersion(string(out))
}

func parseVersion(out string) (pgVersion, error) {
	m := versionPattern.FindStringSubmatch(out)
	if m == nil {
		return pgVersion{}, fmt.Errorf("unrecognised postgres --version output %q", strings.TrimSpace(out))
	}
	v := pgVersion{full: m[1] + m[2], major: m[1]}
	// Before PostgreSQL 10 the major version had two parts (9.6).
	if n, _ := strconv.Atoi(m[1]); n < 10 {
		v.major = v.full
	}
	return v, nil
}
