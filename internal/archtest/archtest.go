// Package archtest holds the import rules of the codebase as a test, so that the layering in
// docs/STYLE.md cannot rot: the wire types and the domain stay stdlib-only, pure packages stay free
// of I/O, and only the entry points assemble the parts. It also holds how the coordinator is
// assembled (docs/ARCHITECTURE.md): its parts are unexported, made in one place in the order they
// need each other, with no setter and no closure over a part made later, and its test hook is
// called from tests alone.
package archtest
