// Package iog is the domain vocabulary of the network: identifiers, devices, clusters, leases,
// amounts of money and the error codes users see. It imports only the standard library.
package iog
