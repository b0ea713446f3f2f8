package executor

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// adoptWorkDir hands what other lease uids left to this start's uid, and nothing else: not
// root's files, not a hard-linked file, not a symbolic link's target.
func TestAdoptWorkDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	r := IDs{First: 61000, Count: 8}
	dir := t.TempDir()
	mk := func(name string, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	prev := mk("out/a.json", 61002)
	if err := os.Lchown(filepath.Join(dir, "out"), 61002, 61002); err != nil {
		t.Fatal(err)
	}
	rootFile := mk("root.txt", 0)
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(outside, 61003, 61003); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(dir, "hard")
	if err := os.Link(outside, linked); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "sym")); err != nil {
		t.Fatal(err)
	}
	if err := adoptWorkDir(dir, &LeaseID{UID: 61005, GID: 61005}, r); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) uint32 {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Uid
	}
	for p, want := range map[string]uint32{prev: 61005, filepath.Join(dir, "out"): 61005, rootFile: 0, outside: 61003} {
		if got := owner(p); got != want {
			t.Errorf("%s owned by %d, want %d", p, got, want)
		}
	}
}
