//go:build race

package devnet

// Under the race detector every solve is ~20 times slower: the sybil registers fewer devices
// so that the end-to-end test stays within minutes (the plain run uses all 50).
const sybilDevices = 10
