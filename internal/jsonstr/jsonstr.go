// Package jsonstr decodes the contents of JSON strings for fanbridge's own JSON scanners, which
// validate a document once and unescape only the strings they keep.
package jsonstr

import (
	"unicode/utf16"
	"unicode/utf8"
)

// AppendUnescaped appends to dst the decoded contents of a JSON string: s is the text between
// the quotes, already checked to be valid JSON string contents (every backslash starts one of
// the escapes JSON allows, \u takes four hex digits). A \u escape of a lone or mismatched UTF-16
// surrogate becomes U+FFFD, as encoding/json decodes it. Other bytes are copied as they are.
func AppendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2 := utf16.DecodeRune(r, hex4(s[i+2:i+6])); r2 != utf8.RuneError {
						dst = utf8.AppendRune(dst, r2)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

// LoneSurrogate reports whether s, valid JSON string contents as for AppendUnescaped, holds a \u
// escape of a UTF-16 surrogate that is not the first half of a pair followed by its second half:
// one that AppendUnescaped turns into U+FFFD, so that two different strings decode the same.
func LoneSurrogate(s []byte) bool {
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			i++
			continue
		}
		if s[i+1] != 'u' {
			i += 2
			continue
		}
		r := hex4(s[i+2 : i+6])
		i += 6
		if !utf16.IsSurrogate(r) {
			continue
		}
		if i+6 > len(s) || s[i] != '\\' || s[i+1] != 'u' || utf16.DecodeRune(r, hex4(s[i+2:i+6])) == utf8.RuneError {
			return true
		}
		i += 6
	}
	return false
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
