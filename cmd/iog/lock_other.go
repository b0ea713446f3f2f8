//go:build !unix

package main

import (
	"errors"
	"os"
)

// lockDataDir does not lock outside Unix: two `iog up` on one data dir are not prevented there.
func lockDataDir(string) (*os.File, error) { return nil, nil }

// freeMiB is not measured outside Unix.
func freeMiB(string) (int64, error) { return 0, errors.New("not measured on this system") }
