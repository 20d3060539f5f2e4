package filter_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/filter"
)

// TestPatternRepeatedKeyRefused: an object of a pattern that gives a key twice, at any depth and
// however the key is spelled, is refused with an error naming the path, never a value. Such a
// pattern used to compile, keeping the last value of a field or merging the two objects, so a
// route lost a condition without a word.
func TestPatternRepeatedKeyRefused(t *testing.T) {
	many := `{`
	for i := range 40 {
		many += `"k` + strconv.Itoa(i) + `":["VOICE"],`
	}
	many += `"k33":["INBOUND"]}`
	for _, c := range []struct{ name, pattern, path, op string }{
		{"a field", `{"source":["VOICE"],"source":["INBOUND"]}`, "source", ""},
		{"an object", `{"detail":{"mediaType":["VOICE"]},"detail":{"direction":["INBOUND"]}}`, "detail", ""},
		{"a nested field", `{"detail":{"mediaType":["VOICE"],"direction":["x"],"mediaType":["INBOUND"]}}`, "detail.mediaType", ""},
		{"a field and an object", `{"detail":["VOICE"],"detail":{"x":["INBOUND"]}}`, "detail", ""},
		{"an escaped key", `{"source":["VOICE"],"sourc\u0065":["INBOUND"]}`, "source", ""},
		{"both escaped", `{"\u0073ource":["VOICE"],"sourc\u0065":["INBOUND"]}`, "source", ""},
		{"the empty key", `{"":{"x":["VOICE"],"x":["INBOUND"]}}`, ".x", ""},
		{"inside a $or alternative", `{"$or":[{"a":["VOICE"],"a":["INBOUND"]},{"b":["x"]}]}`, "a", ""},
		{"inside a $or under a field", `{"d":{"$or":[{"a":["x"]},{"b":{"c":["VOICE"],"c":["INBOUND"]}}]}}`, "d.b.c", ""},
		{"$or", `{"$or":[{"a":["VOICE"]},{"b":["x"]}],"$or":[{"c":["INBOUND"]},{"d":["x"]}]}`, "", "$or"},
		{"$or under a field", `{"d":{"$or":[{"a":["VOICE"]},{"b":["x"]}],"$or":[{"c":["INBOUND"]},{"d":["x"]}]}}`, "d", "$or"},
		{"an operator", `{"a":{"b":[{"prefix":"VOICE","prefix":"INBOUND"}]}}`, "a.b", "prefix"},
		{"an operator inside anything-but", `{"a":[{"anything-but":{"prefix":"VOICE","prefix":"INBOUND"}}]}`, "a", "prefix"},
		{"equals-ignore-case inside prefix", `{"a":[{"prefix":{"equals-ignore-case":"VOICE","equals-ignore-case":"INBOUND"}}]}`, "a", "equals-ignore-case"},
		{"among many keys", many, "k33", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.True(t, repeatsKey([]byte(c.pattern)), "the fuzz target's detector sees the repeat")
			_, err := filter.ParsePattern([]byte(c.pattern))
			require.ErrorIs(t, err, filter.ErrInvalidPattern)
			var pe *filter.PatternError
			require.True(t, errors.As(err, &pe), "error %v is a *PatternError", err)
			assert.Equal(t, c.path, pe.Path, "path in %q", err)
			assert.Equal(t, c.op, pe.Op, "operator in %q", err)
			assert.Contains(t, err.Error(), "given twice")
			assert.NotContains(t, err.Error(), "VOICE")
			assert.NotContains(t, err.Error(), "INBOUND")

			_, err = filter.Test([]byte(c.pattern), []byte(`{}`))
			assert.ErrorIs(t, err, filter.ErrInvalidPattern, "Test")
			assert.ErrorIs(t, filter.NewMatcher().Add("r", []byte(c.pattern)), filter.ErrInvalidPattern, "Matcher.Add")
		})
	}
	_, err := filter.ParsePattern([]byte(`{"detail":{"mediaType":["VOICE"]},"detail":{"direction":["INBOUND"]}}`))
	assert.EqualError(t, err, `filter: pattern at "detail": is given twice in one object`)
}

// TestPatternSameKeyInOtherObjects: a key may appear once in each of several objects: under two
// fields, in two $or alternatives, in two operator objects of one list.
func TestPatternSameKeyInOtherObjects(t *testing.T) {
	for _, p := range []string{
		`{"a":{"x":["1"]},"b":{"x":["1"]}}`,
		`{"a":{"a":["1"]}}`,
		`{"$or":[{"a":["1"]},{"a":["2"]}]}`,
		`{"a":{"$or":[{"b":["1"]},{"b":["2"]}]},"b":["3"]}`,
		`{"a":[{"prefix":"x"},{"prefix":"y"}]}`,
	} {
		require.False(t, repeatsKey([]byte(p)), "the fuzz target's detector sees no repeat in %s", p)
		_, err := filter.ParsePattern([]byte(p))
		assert.NoError(t, err, p)
	}
}

// repeatsKey reports whether some object in the JSON src gives a key twice, comparing keys as
// encoding/json decodes them. It reads src with the decoder's tokens alone, apart from the
// package's parser, for the fuzz target to hold it to.
func repeatsKey(src []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(src))
	var stack []*keyFrame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false // io.EOF, or not JSON: no object to judge past this point
		}
		var top *keyFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.keys != nil && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				markValue(stack)
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &keyFrame{keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &keyFrame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			markValue(stack)
		default:
			markValue(stack)
		}
	}
}

// keyFrame is an object or an array (keys nil) that repeatsKey is inside.
type keyFrame struct {
	keys    map[string]bool
	wantKey bool // the next token is a key or the object's end
}

// markValue records that the object on top of stack, if any, has read a member's value.
func markValue(stack []*keyFrame) {
	if len(stack) > 0 && stack[len(stack)-1].keys != nil {
		stack[len(stack)-1].wantKey = true
	}
}
