//go:build unix

package pack

import "syscall"

const noFollow = syscall.O_NOFOLLOW
