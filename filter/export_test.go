package filter

// PatternWork matches p against raw like MatchRaw and also returns how much searching it took:
// the steps tried plus the values looked at.
func PatternWork(p *Pattern, raw []byte) (bool, int, error) {
	if len(p.branches) > 1 {
		names, work, err := snapshotWork(p.automaton(), raw)
		return len(names) > 0, work, err
	}
	fe := getFlat()
	defer putFlat(fe)
	if err := fe.flatten(p.table, raw, defaultLimits); err != nil {
		return false, 0, err
	}
	fe.work = 0
	ok := p.matchFlat(fe)
	return ok, fe.work, nil
}

// SearchBranches matches p against raw branch by branch, the search MatchRaw runs for a pattern
// of one branch, whatever the number of branches: MatchRaw and a Matcher holding p match a
// pattern with $or through one automaton, and this is what tests hold that automaton to.
func SearchBranches(p *Pattern, raw []byte) (bool, error) {
	return p.searchRaw(raw, defaultLimits)
}

// Branches returns the number of ways p can match: its alternatives once every $or is
// multiplied out.
func Branches(p *Pattern) int { return len(p.branches) }

// MatcherWork is MatchRaw that also returns the nodes visited plus the values looked at.
func MatcherWork(m *Matcher, raw []byte) ([]string, int, error) {
	return snapshotWork(m.current(), raw)
}

func snapshotWork(s *snapshot, raw []byte) ([]string, int, error) {
	ms := s.pool.Get().(*matchScratch)
	defer s.release(ms)
	if err := ms.fe.flatten(s.table, raw, defaultLimits); err != nil {
		return nil, 0, err
	}
	ms.fe.work = 0
	s.match(ms)
	var names []string
	for _, r := range ms.matched {
		names = append(names, s.names[r])
	}
	return names, ms.fe.work, nil
}
