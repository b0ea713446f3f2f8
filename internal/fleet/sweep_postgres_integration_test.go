//go:build integration

package fleet

import (
	"fmt"
	"testing"
	"time"

	"github.com/iognet/iog/internal/store/storetest"
)

// TestSweepMatchesPerDevicePostgres is TestSweepMatchesPerDevice on PostgreSQL, whose text
// collation orders the device ids otherwise than SQLite does.
func TestSweepMatchesPerDevicePostgres(t *testing.T) {
	for _, seed := range []uint64{1, uint64(time.Now().UnixNano())} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			checkBatchedReputation(t, storetest.OpenPostgres(t), seed)
		})
	}
}
