package executor

import (
	"fmt"
	"os"
	"strconv"
)

// writeLeaseIdentity makes the /etc/passwd and /etc/group a sandbox sees: the host's, plus a
// user and group "iog" for the lease's uid and gid with its work directory as home. Tools
// that look their user up (scp, ssh, git, Python's getpass) refuse to run without one. They
// go in a directory next to the work directory (the work root is hidden from the sandbox;
// bubblewrap, running as the lease's uid, reads them through its 0711 mode) and are removed
// with the lease.
func writeLeaseIdentity(workDir string, id *LeaseID) (string, error) {
	dir := workDir + ".etc"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("lease identity: %w", err)
	}
	uid, gid := strconv.FormatUint(uint64(id.UID), 10), strconv.FormatUint(uint64(id.GID), 10)
	for _, f := range []struct{ name, line string }{
		{"passwd", "iog:x:" + uid + ":" + gid + ":iog lease:" + SandboxWorkDir + ":/bin/sh\n"},
		{"group", "iog:x:" + gid + ":\n"},
	} {
		host, err := os.ReadFile("/etc/" + f.name)
		if err != nil && !os.IsNotExist(err) {
			return "", fmt.Errorf("lease identity: %w", err)
		}
		if len(host) > 0 && host[len(host)-1] != '\n' {
			host = append(host, '\n')
		}
		if err := os.WriteFile(dir+"/"+f.name, append(host, f.line...), 0o644); err != nil {
			return "", fmt.Errorf("lease identity: %w", err)
		}
	}
	return dir, nil
}
