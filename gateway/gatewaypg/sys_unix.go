//go:build unix

package gatewaypg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// PostgreSQL refuses to run as root; a gateway running as root runs initdb
// and postgres as this user and group instead. When the group does not exist
// (it is called nobody on some distributions), the user's primary group is
// used.
const (
	unprivilegedUser  = "nobody"
	unprivilegedGroup = "nogroup"
)

// runAccount decides who initdb and postgres run as: the current user, or
// the unprivileged user when the gateway runs as root.
func runAccount() (account, error) {
	if os.Geteuid() != 0 {
		name := strconv.Itoa(os.Geteuid())
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
		return account{name: name, uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}, nil
	}
	u, err := user.Lookup(unprivilegedUser)
	if err != nil {
		return account{}, fmt.Errorf("postgres cannot run as root and there is no user %s to run it as (%w); create that user, run the gateway as a normal user, or pass --postgres-url", unprivilegedUser, err)
	}
	gidText := u.Gid
	if g, err := user.LookupGroup(unprivilegedGroup); err == nil {
		gidText = g.Gid
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("parsing uid of %s: %w", unprivilegedUser, err)
	}
	gid, err := strconv.ParseUint(gidText, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("parsing gid of %s: %w", unprivilegedUser, err)
	}
	return account{name: unprivilegedUser, uid: uint32(uid), gid: uint32(gid), switchTo: true}, nil
}

// sysProcAttr puts a child in its own process group, so that a terminal's
// Ctrl-C reaches only the gateway, which then stops postgres in order. It
// switches to acct when needed and, if tiedToParent, arranges for the child
// to be told when the gateway dies.
func sysProcAttr(acct account, tiedToParent bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if acct.switchTo {
		// No Groups: root's supplementary groups are dropped as well.
		attr.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid}
	}
	if tiedToParent {
		setParentDeathSignal(attr)
	}
	return attr
}

// lockFile takes an exclusive flock on path, so that two gateways never
// manage one cluster directory. The kernel drops the lock when the process
// dies, so it never goes stale; closing the file releases it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another blockgate process; stop that one, use another dir, or pass --postgres-url", filepath.Dir(path))
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

// checkReachable fails when acct cannot search (execute) path or one of the
// directories above it, naming the topmost such directory. It judges by the
// mode bits alone: supplementary groups and ACLs are not considered.
func checkReachable(path string, acct account) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", path, err)
	}
	var chain []string
	for p := real; ; p = filepath.Dir(p) {
		chain = append(chain, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		p := chain[i]
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("checking access to %s: %w", p, err)
		}
		if !mayExecute(fi, acct) {
			return fmt.Errorf("postgres runs as user %s, which cannot get through %s (mode %v, owner uid %d); allow it with `chmod o+x %s`, or pass --postgres-url",
				acct.name, p, fi.Mode(), ownerUID(fi), p)
		}
	}
	return nil
}

func mayExecute(fi fs.FileInfo, acct account) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == acct.uid:
		return perm&0o100 != 0
	case st.Gid == acct.gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

func ownerUID(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return 0
}

// checkOwner fails when an existing cluster does not belong to acct, rather
// than taking over someone else's files.
func checkOwner(dataDir string, acct account) error {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return fmt.Errorf("checking %s: %w", dataDir, err)
	}
	if uid := ownerUID(fi); uid != acct.uid {
		return fmt.Errorf("%s belongs to uid %d, but postgres runs as %s (uid %d); hand it over (chown -R %d:%d %s) or use another dir",
			dataDir, uid, acct.name, acct.uid, acct.uid, acct.gid, dataDir)
	}
	return nil
}

// killGroup kills a child's whole process group: the postmaster and its
// backends, or initdb and the bootstrap server it runs.
func killGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}

// processExists reports whether a process with that pid exists, whoever owns it.
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
