package iog

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// ID prefixes make identifiers self-describing in logs and CLIs.
const (
	PrefixAccount = "acc"
	PrefixDevice  = "dev"
	PrefixCluster = "cl"
	PrefixLease   = "ls"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns prefix_ plus 16 random characters (80 bits).
func NewID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

// NewSecret returns a random secret of n bytes, encoded as lower-case text, with a prefix.
func NewSecret(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + strings.ToLower(idEncoding.EncodeToString(b))
}
