package filter

import (
	"unicode"
	"unicode/utf8"
)

// foldAppend appends the case-folded form of s to dst. Two strings are equal ignoring case (as
// strings.EqualFold decides, by Unicode simple case folding) exactly when their folded forms are
// equal, and folding works rune by rune, so a folded prefix or suffix stays a prefix or suffix.
// That is what lets the Matcher index equals-ignore-case values in maps.
func foldAppend(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, c)
			i++
			continue
		}
		dst = utf8.AppendRune(dst, foldRune(r))
		i += n
	}
	return dst
}

// foldRune maps r to one fixed member of its case-folding orbit: the smallest, lower-cased when
// that is an ASCII capital (so that ASCII text folds to plain lower case).
func foldRune(r rune) rune {
	lo := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < lo {
			lo = f
		}
	}
	if 'A' <= lo && lo <= 'Z' {
		lo += 'a' - 'A'
	}
	return lo
}

func foldString(s string) string {
	return string(foldAppend(nil, []byte(s)))
}
