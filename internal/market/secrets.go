package market

import (
	"context"
	"slices"
	"strings"

	"github.com/iognet/iog/internal/iog"
)

// Bounds on a cluster's secrets.
const (
	maxSecrets     = 64
	maxSecretValue = 32 << 10
)

// validSecrets checks secret names and values: environment names, not iog's own, not also in
// env, bounded. Errors name the secret, never its value.
func validSecrets(secrets, env map[string]string) error {
	if len(secrets) > maxSecrets {
		return iog.Errorf(iog.EINVALID, "at most %d secrets", maxSecrets)
	}
	for k, v := range secrets {
		if !envKey.MatchString(k) || len(k) > 128 {
			return iog.Errorf(iog.EINVALID, "secret name %q: want letters, digits and _", iog.CleanText(k, 64))
		}
		if strings.HasPrefix(k, "IOG_") {
			return iog.Errorf(iog.EINVALID, "secret %s: names starting with IOG_ are iog's", k)
		}
		if _, dup := env[k]; dup {
			return iog.Errorf(iog.EINVALID, "secret %s is also in env", k)
		}
		if len(v) > maxSecretValue || strings.ContainsRune(v, 0) {
			return iog.Errorf(iog.EINVALID, "secret %s: at most %d bytes, no NUL", k, maxSecretValue)
		}
	}
	return nil
}

// secretNames are a spec's secret names, sorted.
func secretNames(s iog.ClusterSpec) []string {
	names := make([]string, 0, len(s.Secrets))
	for k := range s.Secrets {
		names = append(names, k)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return nil
	}
	return names
}

// scrubSecrets removes an ended cluster's secrets from its stored spec; a failure is logged
// and ScrubEndedSecrets catches up.
func (m *Market) scrubSecrets(ctx context.Context, id string) {
	if err := m.db.ScrubSecrets(ctx, id); err != nil {
		m.cfg.Log.Error("scrub secrets", "cluster", id, "err", err)
	}
}

// ScrubEndedSecrets scrubs every ended cluster that still holds secrets.
func (m *Market) ScrubEndedSecrets(ctx context.Context) (int, error) {
	ids, err := m.db.EndedWithSecrets(ctx)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := m.db.ScrubSecrets(ctx, id); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}
