//go:build !linux

package hwinfo

// diskMiB is not implemented off Linux, where workers do not run; it reports 0
// rather than failing so that tools built for other systems still work.
func diskMiB(string) (int64, error) {
	return 0, nil
}
