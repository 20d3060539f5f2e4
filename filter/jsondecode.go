package filter

import (
	"strconv"

	"github.com/fanbridge/fanbridge/internal/jsonstr"
)

// decodeJSON decodes a JSON value into the Go values CEL adapts natively: map[string]any,
// []any, string, int64 (integers that fit), float64 (other numbers), bool and nil.
func decodeJSON(b []byte) (any, error) {
	v, end, err := decodeValue(b, skipWS(b, 0), 0)
	if err != nil {
		return nil, err
	}
	if err := checkTrailing(b, end); err != nil {
		return nil, err
	}
	return v, nil
}

func decodeValue(b []byte, i, depth int) (any, int, error) {
	i = skipWS(b, i)
	if i >= len(b) {
		return nil, i, syntaxErr(i, "unexpected end")
	}
	if depth > maxEventDepth {
		return nil, i, syntaxErr(i, "nesting too deep")
	}
	switch c := b[i]; c {
	case '{':
		m := map[string]any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return m, i + 1, nil
		}
		for {
			kEnd, esc, err := scanString(b, i)
			if err != nil {
				return nil, kEnd, err
			}
			key := stringOf(b[i+1:kEnd-1], esc)
			i = skipWS(b, kEnd)
			if i >= len(b) || b[i] != ':' {
				return nil, i, syntaxErr(i, "expected ':'")
			}
			var v any
			if v, i, err = decodeValue(b, i+1, depth+1); err != nil {
				return nil, i, err
			}
			m[key] = v
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				return m, i + 1, nil
			}
			return nil, i, syntaxErr(i, "expected ',' or '}'")
		}
	case '[':
		l := []any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return l, i + 1, nil
		}
		for {
			v, end, err := decodeValue(b, i, depth+1)
			if err != nil {
				return nil, end, err
			}
			l = append(l, v)
			i = skipWS(b, end)
			if i < len(b) && b[i] == ',' {
				i++
				continue
			}
			if i < len(b) && b[i] == ']' {
				return l, i + 1, nil
			}
			return nil, i, syntaxErr(i, "expected ',' or ']'")
		}
	case '"':
		end, esc, err := scanString(b, i)
		if err != nil {
			return nil, end, err
		}
		return stringOf(b[i+1:end-1], esc), end, nil
	case 't':
		end, err := scanLiteral(b, i, "true")
		return true, end, err
	case 'f':
		end, err := scanLiteral(b, i, "false")
		return false, end, err
	case 'n':
		end, err := scanLiteral(b, i, "null")
		return nil, end, err
	default:
		end, err := scanNumber(b, i)
		if err != nil {
			return nil, end, err
		}
		text := unsafeString(b[i:end])
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return n, end, nil
		}
		f, _ := strconv.ParseFloat(text, 64)
		return f, end, nil
	}
}

func stringOf(s []byte, escaped bool) string {
	if escaped {
		return string(jsonstr.AppendUnescaped(make([]byte, 0, len(s)), s))
	}
	return string(s)
}
