// Package api holds iog's public wire types and a typed Go client for the /v1 HTTP API.
//
// It imports only the standard library. Fields are only ever added, never renamed or removed,
// so that older workers and CLIs keep working against a newer coordinator.
package api
