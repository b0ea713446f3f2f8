package cli

import (
	"context"
	"io"
	"testing"
	"time"
)

func TestTrustFlags(t *testing.T) {
	var got CoordinatorOptions
	svc := Services{Coordinator: func(_ context.Context, o CoordinatorOptions, _ io.Writer) error { got = o; return nil }}
	env := map[string]string{"HOME": t.TempDir()}
	r := runCLI(t, env, svc, "coordinator", "--probation", "2h", "--proof-slack", "6")
	wantCode(t, r, exitOK)
	if got.Trust.Probation == nil || *got.Trust.Probation != 2*time.Hour || got.Trust.ProofSlack == nil || *got.Trust.ProofSlack != 6 ||
		got.Trust.ProofRetry != nil || got.Trust.Reprove != nil || got.Trust.ProofStartWindow != nil || got.Trust.ProofAllowance != nil {
		t.Fatalf("trust options %+v", got.Trust)
	}
	for _, c := range [][]string{
		{"--probation", "-1s"}, {"--proof-retry", "0s"}, {"--reprove", "8760h"}, {"--proof-start-window", "1h"},
		{"--proof-allowance", "2m"}, {"--proof-slack", "0.5"}, {"--proof-slack", "NaN"}, {"--sweep-every", "1s"}, {"--sweep-every", "48h"},
	} {
		r := runCLI(t, env, svc, append([]string{"coordinator"}, c...)...)
		wantCode(t, r, exitUsage)
		wantContains(t, "stderr", r.stderr, c[0])
	}
}
