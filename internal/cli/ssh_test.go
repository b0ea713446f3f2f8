package cli

import "testing"

// TestSSHAlias: only names that are safe in an ssh Host line, and cannot pass for an id,
// become iog-<name>-<rank>.
func TestSSHAlias(t *testing.T) {
	for name, want := range map[string]string{
		"train": "train", "llama-70b_run.2": "llama-70b_run.2", "": "", "cl_abc": "", "two words": "",
		"a*": "", "x\nHost *": "", "ünï": "", string(make([]byte, 65)): "",
	} {
		if got := sshAlias(name); got != want {
			t.Errorf("sshAlias(%q) = %q, want %q", name, got, want)
		}
	}
}
