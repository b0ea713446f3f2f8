//go:build integration

package store_test

import (
	"testing"

	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.DB {
		return storetest.OpenPostgres(t)
	})
}
