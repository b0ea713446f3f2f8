// Package archtest holds the import rules of the codebase as a test, so that the layering in
// docs/STYLE.md cannot rot: the wire types and the domain stay stdlib-only, pure packages stay free
// of I/O, and only the entry points assemble the parts.
package archtest
