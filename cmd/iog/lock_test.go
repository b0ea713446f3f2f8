//go:build unix

package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	f, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockDataDir(dir)
	if err == nil || !strings.Contains(err.Error(), "another iog up is running on "+dir) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) {
		t.Fatalf("second lock: %v", err)
	}
	f.Close()
	g, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after the first was released: %v", err)
	}
	g.Close()
}
