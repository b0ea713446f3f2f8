package iog

import "runtime/debug"

// BuildVersion is the version and VCS revision the Go toolchain stamped into this binary:
// the module version ("dev" for a local build) and the commit ("" when unknown).
func BuildVersion() (version, commit string) {
	version = "dev"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version, ""
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			commit = s.Value
		}
	}
	return version, commit
}
