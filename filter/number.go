package filter

// Numbers are compared the way EventBridge compares them: as exact decimals with at most six
// digits after the point, between -5e11 and +5e11 inclusive. Such a number is held as an int64
// count of millionths, so that comparisons are exact integer comparisons (no float rounding).

const (
	// numLimitMicro is 5e11 expressed in millionths.
	numLimitMicro = 500_000_000_000_000_000
	// maxNumDecimals is how many digits after the decimal point a comparable number may have.
	maxNumDecimals = 6
)

// comparableNumber converts the text of a JSON number to millionths. ok is false when the number
// has more than six significant decimals or lies outside ±5e11; such a number only ever matches
// the same literal text.
func comparableNumber(text []byte) (micro int64, ok bool) {
	i := 0
	neg := false
	if i < len(text) && text[i] == '-' {
		neg = true
		i++
	}
	// digits holds the significant digits without leading or trailing zeros; zeros are held back
	// in pending until a non-zero digit follows them. value = digits * 10^pending / 10^scale.
	var digits [20]byte
	nd, pending, scale := 0, 0, 0
	overflow := false
	add := func(c byte) {
		if c == '0' {
			if nd > 0 {
				pending++
			}
			return
		}
		for ; pending > 0; pending-- {
			if nd == len(digits) {
				overflow = true
				return
			}
			digits[nd] = '0'
			nd++
		}
		if nd == len(digits) {
			overflow = true
			return
		}
		digits[nd] = c
		nd++
	}
	for i < len(text) && text[i] >= '0' && text[i] <= '9' {
		add(text[i])
		i++
	}
	if i < len(text) && text[i] == '.' {
		i++
		for i < len(text) && text[i] >= '0' && text[i] <= '9' {
			add(text[i])
			scale++
			i++
		}
	}
	exp := 0
	if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
		i++
		eneg := false
		if i < len(text) && (text[i] == '+' || text[i] == '-') {
			eneg = text[i] == '-'
			i++
		}
		for i < len(text) && text[i] >= '0' && text[i] <= '9' {
			if exp < 100_000 {
				exp = exp*10 + int(text[i]-'0')
			}
			i++
		}
		if eneg {
			exp = -exp
		}
	}
	if nd == 0 {
		return 0, true
	}
	if overflow {
		// more than 20 significant digits: either more than six decimals or far above 5e11
		return 0, false
	}
	scale = scale - pending - exp
	if scale > maxNumDecimals {
		return 0, false
	}
	// value in millionths = digits * 10^(6-scale); at most 18 digits fit below 5e17.
	shift := maxNumDecimals - scale
	if nd+shift > 18 {
		return 0, false
	}
	var v int64
	for _, c := range digits[:nd] {
		v = v*10 + int64(c-'0')
	}
	for range shift {
		v *= 10
	}
	if v > numLimitMicro {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}
