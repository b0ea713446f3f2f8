package executor

import (
	"context"
	"errors"
)

// RemoveOwned lets the external integration tests aim the one function that
// stops or removes containers at containers that are not iog's.
func (d *Docker) RemoveOwned(ctx context.Context, id, owner, lease string) error {
	return d.removeOwned(ctx, id, owner, lease, d.grace())
}

// IsNotOwned reports whether err is removeOwned's refusal.
func IsNotOwned(err error) bool {
	var no *notOwnedError
	return errors.As(err, &no)
}
