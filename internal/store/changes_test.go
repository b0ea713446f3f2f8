package store

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Placement's in-memory index sees a device change only through devices.changed_seq: every
// statement of the store that writes a column placement reads must also stamp changed_seq
// (nextDeviceSeq). This reads the store's own statements, so that a new write cannot forget it.
func TestDeviceWritesStampTheirChange(t *testing.T) {
	placement := []string{"status", "ask_per_hour", "inventory", "gpu_model", "gpu_count", "region", "tier",
		"addr", "data_plane", "deleted", "paused", "owner_id"}
	write := regexp.MustCompile("(?s)(UPDATE devices SET|INSERT INTO devices)[^`]*")
	where := regexp.MustCompile(`\sWHERE\s`)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, stmt := range write.FindAllString(string(b), -1) {
			seen++
			cols := stmt
			if strings.HasPrefix(stmt, "UPDATE") {
				cols = where.Split(stmt, 2)[0]
			}
			for _, c := range placement {
				if regexp.MustCompile(`\b`+c+`\b`).MatchString(cols) && !strings.Contains(cols, "changed_seq") {
					t.Errorf("%s: %q writes %s but does not stamp changed_seq", f, strings.Join(strings.Fields(stmt), " "), c)
				}
			}
		}
	}
	if seen < 5 {
		t.Fatalf("found %d writes of devices: the pattern no longer matches the store's statements", seen)
	}
}
