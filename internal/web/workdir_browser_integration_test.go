//go:build integration

package web_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/iognet/iog/internal/devnet"
)

// A renter deploys from the browser with a task file loaded from disk and a work directory
// chosen as a directory: the files are uploaded with progress, packed as `iog launch` packs
// them, and the node runs the task's command on them.
func TestBrowserWorkdirAndTaskFileUpload(t *testing.T) {
	d, err := devnet.Start(t.Context(), devnet.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Workers: 1,
		HeartbeatInterval: 500 * time.Millisecond, PollWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close devnet: %v", err)
		}
	})
	src := t.TempDir()
	work := filepath.Join(src, "project")
	for name, body := range map[string]string{
		"project/data/msg.txt": "hello from the uploaded workdir\n",
		"project/show.sh":      "echo \"files: $(ls data | wc -l)\"; cat data/msg.txt\n",
		"project/.iogignore":   "secret.key\n",
		"project/secret.key":   "must not be uploaded",
		"task.yaml":            "name: from-a-file\nnodes: 1\nhours: 1\nworkdir: project\nrun: sh show.sh; test ! -e secret.key && echo ignored-file-absent\n",
	} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := d.Coord.URL()
	c := startChromium(t)
	c.run(t, "log in", chromedp.Navigate(base+"/console"), chromedp.WaitVisible(chromedp.CSS("#api-key")),
		chromedp.SendKeys(chromedp.CSS("#api-key"), d.Token), chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#new-cluster")))
	c.run(t, "load the task file", chromedp.Navigate(base+"/console/deploy"), chromedp.WaitVisible(chromedp.CSS("#f-task-file")),
		chromedp.SetUploadFiles(chromedp.CSS("#f-task-file"), []string{filepath.Join(src, "task.yaml")}),
		until(`document.querySelector("#f-task").value.includes("workdir: project")`))
	// Without the directory, the task's workdir is refused next to the task field.
	c.run(t, "quote without the directory", until(`document.querySelector("#err-task").textContent.includes("Work directory")`))
	c.run(t, "choose the directory", chromedp.SetUploadFiles(chromedp.CSS("#f-workdir-files"), []string{work}),
		until(`["1", "error"].includes(document.querySelector("#workdir-box").dataset.done)`))
	state := eval[string](t, c, `document.querySelector("#workdir-state").textContent`)
	if eval[string](t, c, `document.querySelector("#workdir-box").dataset.done`) != "1" || !strings.Contains(state, "uploaded: 3 files") {
		t.Fatalf("upload state %q: want 3 files kept, the key ignored", state)
	}
	c.run(t, "the quote", until(`document.querySelector("#err-task").textContent === "" && !!document.querySelector("#quote-total")`))
	c.run(t, "deploy", chromedp.Click(chromedp.CSS("#deploy-submit")), chromedp.WaitVisible(chromedp.CSS("#live")),
		until(`document.querySelector("#log-0").textContent.includes("ignored-file-absent")`))
	log := eval[string](t, c, `document.querySelector("#log-0").textContent`)
	if !strings.Contains(log, "hello from the uploaded workdir") || !strings.Contains(log, "files: 1") {
		t.Fatalf("node 0's log:\n%s", log)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.problems) > 0 {
		t.Fatalf("the browser saw: %v", c.problems)
	}
}
