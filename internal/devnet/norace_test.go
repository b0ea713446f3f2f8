//go:build !race

package devnet

const sybilDevices = SybilDevices
