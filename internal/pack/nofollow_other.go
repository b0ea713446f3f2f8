//go:build !unix

package pack

const noFollow = 0
