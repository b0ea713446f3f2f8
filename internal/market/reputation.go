package market

// reputation is the placement preference of a device (see sched.Candidate.Reputation).
func (m *Market) reputation(id string) int {
	if m.cfg.Reputation == nil {
		return 0
	}
	return m.cfg.Reputation(id)
}
