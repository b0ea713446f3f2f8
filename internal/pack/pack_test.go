package pack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree writes files (name -> content; a name ending in / is a directory, "->" content a link).
func tree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(name, "/"):
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(body, "->"):
			if err := os.Symlink(strings.TrimPrefix(body, "->"), p); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// contents lists a directory as name -> content ("dir/" for directories, "->target" links).
func contents(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			tg, _ := os.Readlink(p)
			out[rel] = "->" + tg
		case d.IsDir():
			out[rel+"/"] = ""
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func packDir(t *testing.T, root string, o Options) ([]byte, Stats, error) {
	t.Helper()
	var buf bytes.Buffer
	st, err := Pack(t.Context(), root, &buf, o)
	return buf.Bytes(), st, err
}

func TestPackRespectsIgnoreFiles(t *testing.T) {
	src := t.TempDir()
	tree(t, src, map[string]string{
		".gitignore":          "*.log\n/build/\ndata/**/*.bin\n# comment\n\n!keep.log\n",
		".iogignore":          "secret.txt\nnode_modules/\n",
		"train.py":            "print('hi')",
		"a.log":               "x",
		"keep.log":            "kept",
		"build/out.o":         "x",
		"sub/build/kept.txt":  "anchored /build/ is only the top one",
		"data/x/y/big.bin":    "x",
		"data/small.csv":      "1,2",
		"secret.txt":          "s",
		"node_modules/m/i.js": "x",
		"sub/.gitignore":      "local.txt\n",
		"sub/local.txt":       "x",
		"local.txt":           "only sub's rule ignores local.txt",
		".git/config":         "x",
		"link":                "->train.py",
		"sub/uplink":          "->../data",
	})
	if err := os.Chmod(filepath.Join(src, "train.py"), 0o750); err != nil {
		t.Fatal(err)
	}
	arc, st, err := packDir(t, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "w")
	ust, err := Unpack(t.Context(), bytes.NewReader(arc), dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ust != st {
		t.Errorf("unpacked %+v, packed %+v", ust, st)
	}
	got := contents(t, dst)
	want := map[string]string{
		".gitignore": "*.log\n/build/\ndata/**/*.bin\n# comment\n\n!keep.log\n", ".iogignore": "secret.txt\nnode_modules/\n",
		"train.py": "print('hi')", "keep.log": "kept", "sub/": "", "sub/build/": "", "sub/build/kept.txt": "anchored /build/ is only the top one",
		"data/": "", "data/x/": "", "data/x/y/": "", "data/small.csv": "1,2", "sub/.gitignore": "local.txt\n",
		"local.txt": "only sub's rule ignores local.txt", "link": "->train.py", "sub/uplink": "->../data",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s was shipped; it is ignored", k)
		}
	}
	fi, err := os.Stat(filepath.Join(dst, "train.py"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("train.py mode %v, %v; want 0755", fi.Mode(), err)
	}
	// The same directory packs to the same bytes: the archive is content-addressable.
	again, _, err := packDir(t, src, Options{})
	if err != nil || !bytes.Equal(arc, again) {
		t.Errorf("packing twice gave different archives (%v)", err)
	}
}

func TestPackRefuses(t *testing.T) {
	outside := t.TempDir()
	tree(t, outside, map[string]string{"secret": "s"})
	for _, tc := range []struct {
		name  string
		files map[string]string
		path  string
		msg   string
	}{
		{"absolute link", map[string]string{"l": "->" + filepath.Join(outside, "secret")}, "l", "absolute"},
		{"relative link out", map[string]string{"d/l": "->../../" + filepath.Base(outside) + "/secret"}, "d/l", ""},
		{"link to parent", map[string]string{"l": "->.."}, "l", "outside"},
		{"dangling link", map[string]string{"l": "->nothing"}, "l", "does not resolve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			tree(t, src, tc.files)
			_, _, err := packDir(t, src, Options{})
			var pe *PathError
			if !errors.As(err, &pe) || pe.Path != tc.path || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("err = %v, want one naming %s (%s)", err, tc.path, tc.msg)
			}
		})
	}
	t.Run("fifo", func(t *testing.T) {
		src := t.TempDir()
		if err := mkfifo(filepath.Join(src, "pipe")); err != nil {
			t.Skip("no mkfifo:", err)
		}
		_, _, err := packDir(t, src, Options{})
		var pe *PathError
		if !errors.As(err, &pe) || pe.Path != "pipe" {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("over the cap", func(t *testing.T) {
		src := t.TempDir()
		tree(t, src, map[string]string{"a": strings.Repeat("x", 600), "b": strings.Repeat("y", 600)})
		_, _, err := packDir(t, src, Options{MaxBytes: 1000})
		var pe *PathError
		if !errors.Is(err, ErrTooLarge) || !errors.As(err, &pe) || pe.Path != "b" {
			t.Errorf("err = %v", err)
		}
		if _, _, err := packDir(t, src, Options{MaxBytes: 1200}); err != nil {
			t.Errorf("at the cap: %v", err)
		}
	})
}

// archive builds a tar.gz from headers (with bodies for regular files).
func archive(t *testing.T, ents ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for i := 0; i < len(ents); i++ {
		h := ents[i].(*tar.Header)
		var body string
		if h.Typeflag == tar.TypeReg {
			i++
			body = ents[i].(string)
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func reg(name string, mode int64) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}
}

func TestUnpackRefusesHostileArchives(t *testing.T) {
	for _, tc := range []struct {
		name string
		arc  []any
		path string
	}{
		{"dot dot", []any{reg("ok.txt", 0o644), "fine", reg("../evil", 0o644), "x"}, "../evil"},
		{"dot dot inside", []any{reg("a/../../evil", 0o644), "x"}, "a/../../evil"},
		{"absolute", []any{reg("/etc/evil", 0o644), "x"}, "/etc/evil"},
		{"char device", []any{&tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, "null"},
		{"block device", []any{&tar.Header{Name: "sda", Typeflag: tar.TypeBlock}}, "sda"},
		{"fifo", []any{&tar.Header{Name: "p", Typeflag: tar.TypeFifo}}, "p"},
		{"hard link", []any{&tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}, "h"},
		{"absolute link", []any{&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}}, "l"},
		{"link out", []any{&tar.Header{Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "../../etc"}}, "d/l"},
		{"write through a link", []any{&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "."}, reg("l/x", 0o644), "x"}, "l/x"},
		{"link chain out", []any{
			&tar.Header{Name: "l1", Typeflag: tar.TypeSymlink, Linkname: "."},
			&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
			&tar.Header{Name: "d/l2", Typeflag: tar.TypeSymlink, Linkname: "../l1/.."},
		}, "d/l2"},
		{"file over a link", []any{&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "x"}, reg("x", 0o644), "", reg("l", 0o644), "x"}, ""},
		{"too large", []any{reg("a", 0o644), strings.Repeat("x", 2000)}, "a"},
		{"too many", []any{reg("a", 0o644), "", reg("b", 0o644), "", reg("c", 0o644), ""}, "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "w")
			maxEntries := 100
			if tc.name == "too many" {
				maxEntries = 2
			}
			_, err := Unpack(t.Context(), bytes.NewReader(archive(t, tc.arc...)), dst, Options{MaxBytes: 1000, MaxEntries: maxEntries})
			if err == nil {
				t.Fatal("unpacked")
			}
			var pe *PathError
			if tc.path != "" && (!errors.As(err, &pe) || pe.Path != tc.path) {
				t.Errorf("err = %v, want one naming %s", err, tc.path)
			}
			// Nothing is left behind, inside or out.
			left, _ := os.ReadDir(parent)
			if len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func TestUnpackSanePermissions(t *testing.T) {
	arc := archive(t,
		&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o777 | int64(fs.ModeSetgid)},
		reg("d/suid", 0o4777), "x",
		reg("d/plain", 0o600), "y",
		reg("d/exec", 0o700), "z",
	)
	dst := filepath.Join(t.TempDir(), "w")
	if _, err := Unpack(t.Context(), bytes.NewReader(arc), dst, Options{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{"d": fs.ModeDir | 0o755, "d/suid": 0o755, "d/plain": 0o644, "d/exec": 0o755} {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", name, fi.Mode(), err, want)
		}
	}
}

func TestUnpackWantsANewDirectory(t *testing.T) {
	dst := t.TempDir() // exists
	if _, err := Unpack(t.Context(), bytes.NewReader(archive(t, reg("a", 0o644), "x")), dst, Options{}); err == nil {
		t.Fatal("unpacked into an existing directory")
	}
	if _, err := os.Stat(dst); err != nil {
		t.Errorf("an existing directory was removed: %v", err)
	}
	dst = filepath.Join(t.TempDir(), "w")
	if _, err := Unpack(t.Context(), strings.NewReader("not gzip"), dst, Options{}); err == nil {
		t.Fatal("unpacked garbage")
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("garbage left %s behind", dst)
	}
}

func TestIgnoreMatch(t *testing.T) {
	rules := parseIgnore("", strings.NewReader("*.pyc\n/top\ndocs/*.md\n**/cache/**\n!important.pyc\nout/\n\\#hash\n"))
	for _, tc := range []struct {
		path  string
		isDir bool
		want  bool
	}{
		{"a.pyc", false, true}, {"x/y/a.pyc", false, true}, {"important.pyc", false, false},
		{"top", false, true}, {"x/top", false, false}, {"docs/a.md", false, true}, {"docs/x/a.md", false, false},
		{"a/cache/b", false, true}, {"out", true, true}, {"out", false, false}, {"#hash", false, true}, {"train.py", false, false},
	} {
		if got := ignored(rules, tc.path, tc.isDir); got != tc.want {
			t.Errorf("ignored(%q, dir=%v) = %v, want %v", tc.path, tc.isDir, got, tc.want)
		}
	}
}

func FuzzUnpack(f *testing.F) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	_ = tw.WriteHeader(&tar.Header{Name: "a/b", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	_, _ = tw.Write([]byte("x"))
	_ = tw.WriteHeader(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "a/b"})
	_ = tw.Close()
	_ = gz.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "w")
		_, err := Unpack(t.Context(), bytes.NewReader(data), dst, Options{MaxBytes: 1 << 20, MaxEntries: 100})
		if err != nil {
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Fatalf("failed unpack left %v", left)
			}
			return
		}
		real, _ := filepath.EvalSymlinks(dst)
		_ = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type()&fs.ModeSymlink != 0 {
				r, err := filepath.EvalSymlinks(p)
				if err != nil || !within(real, r) {
					t.Fatalf("link %s resolves to %s (%v)", p, r, err)
				}
			}
			if !d.IsDir() && d.Type()&^fs.ModeSymlink != 0 {
				t.Fatalf("%s is a %v", p, d.Type())
			}
			return nil
		})
	})
}
