package hwinfo

import "syscall"

// diskMiB is the size of the filesystem holding path.
func diskMiB(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	// f_blocks counts fragments of f_frsize; f_bsize is only the preferred
	// I/O size, although the two agree on the usual filesystems.
	unit := int64(st.Frsize)
	if unit <= 0 {
		unit = int64(st.Bsize)
	}
	return int64(st.Blocks) * unit / (1 << 20), nil
}
