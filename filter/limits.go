package filter

// limits are the sizes from which a match turns to the means it keeps for large events. Every
// match outside tests uses defaultLimits. A match takes its limits as an argument and keeps them
// in its own flatEvent, so tests lower them for one call, and small events take those means too,
// without touching what other matches running at the same time use.
type limits struct {
	// optionsMin is the number of fields at a path from which options narrows them down; below
	// it looking at each costs less.
	optionsMin int
	// holdFloor is the part of holdMax that does not depend on the event's size.
	holdFloor int
	// A transition's strings are looked up in the value index rather than its values looked at
	// one by one when the values are keyedMin or more, and at least keyedRatio times the
	// strings (see valueIndex.use).
	keyedMin, keyedRatio int
}

var defaultLimits = limits{optionsMin: 8, holdFloor: 1024, keyedMin: 64, keyedRatio: 4}
