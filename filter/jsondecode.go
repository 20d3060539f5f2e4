package filter

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/fanbridge/fanbridge/internal/jsonstr"
)

// The causes behind a body that is JSON but that CEL expressions do not take; each comes wrapped
// with ErrInvalidEvent.
var (
	errBodyTooDeep     = errors.New("the body nests deeper than " + strconv.Itoa(maxEventDepth) + " levels")
	errBodyNumberRange = errors.New("a number in the body is beyond the range of a double")
)

// decodeJSON decodes a JSON value into the values CEL takes for data: *jsonObject for objects,
// []any, string, int64 (integers that fit), float64 (other numbers), bool and nil. A value
// nested deeper than the package's limit, or a number too large for a float64 (1e400), is an
// error rather than a value CEL would compare wrongly (every such number would be +Inf).
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
	switch c := b[i]; c {
	case '{':
		if depth >= maxEventDepth {
			return nil, i, fmt.Errorf("%w: %w (offset %d)", ErrInvalidEvent, errBodyTooDeep, i)
		}
		m := map[string]any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return &jsonObject{m}, i + 1, nil
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
			// A repeated key keeps its last value.
			m[key] = v
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				return &jsonObject{m}, i + 1, nil
			}
			return nil, i, syntaxErr(i, "expected ',' or '}'")
		}
	case '[':
		if depth >= maxEventDepth {
			return nil, i, fmt.Errorf("%w: %w (offset %d)", ErrInvalidEvent, errBodyTooDeep, i)
		}
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
		// scanNumber checked the syntax, so the only error left is a number beyond ±1.8e308.
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, i, fmt.Errorf("%w: %w (offset %d)", ErrInvalidEvent, errBodyNumberRange, i)
		}
		return f, end, nil
	}
}

func stringOf(s []byte, escaped bool) string {
	if escaped {
		return string(jsonstr.AppendUnescaped(make([]byte, 0, len(s)), s))
	}
	return string(s)
}

// jsonObject is a JSON object as CEL sees it: a map with string keys, holding the values
// decodeJSON returns. It differs from the map[string]any CEL adapts by itself in one way: a
// comprehension walks its keys in sorted order, where CEL walks a Go map in Go's random order.
// When the cost limit stops a walk part-way, the entries it looked at then depend on the event
// alone, so one event gives one result on every evaluation.
//
// CEL holds it by pointer, as it holds its own maps: CEL uses values as Go map keys (`in` on a
// constant list and map literals become hash lookups), and a Go map type as a key panics.
type jsonObject struct{ m map[string]any }

var _ traits.Mapper = (*jsonObject)(nil)

// jsonValue gives CEL's value for a value of decodeJSON.
func jsonValue(v any) ref.Val {
	switch v := v.(type) {
	case string:
		return types.String(v)
	case int64:
		return types.Int(v)
	case float64:
		return types.Double(v)
	case bool:
		return types.Bool(v)
	case nil:
		return types.NullValue
	case *jsonObject:
		return v
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

// Find returns the value at key, a string; any other key is not found, as in CEL's maps.
func (o *jsonObject) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return nil, false
	}
	v, ok := o.m[string(k)]
	if !ok {
		return nil, false
	}
	return jsonValue(v), true
}

// Get returns the value at key, or CEL's "no such key" error.
func (o *jsonObject) Get(key ref.Val) ref.Val {
	v, found := o.Find(key)
	if !found {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

// Contains reports whether the object has the key.
func (o *jsonObject) Contains(key ref.Val) ref.Val {
	_, found := o.Find(key)
	return types.Bool(found)
}

// Size returns the number of keys.
func (o *jsonObject) Size() ref.Val { return types.Int(len(o.m)) }

// Iterator walks the keys in sorted order.
func (o *jsonObject) Iterator() traits.Iterator {
	keys := make([]string, 0, len(o.m))
	for k := range o.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return &keyIterator{keys: keys}
}

// Equal reports whether other is a map with the same keys and equal values, as CEL's maps do.
func (o *jsonObject) Equal(other ref.Val) ref.Val {
	om, ok := other.(traits.Mapper)
	if !ok || om.Size() != types.Int(len(o.m)) {
		return types.False
	}
	for k, v := range o.m {
		ov, found := om.Find(types.String(k))
		if !found || types.Equal(jsonValue(v), ov) == types.False {
			return types.False
		}
	}
	return types.True
}

// Type returns CEL's map type.
func (o *jsonObject) Type() ref.Type { return types.MapType }

// Value returns the object as a Go map; objects inside it are *jsonObject values.
func (o *jsonObject) Value() any { return o.m }

// ConvertToType converts the object to the map type or gives its type, as CEL's maps do.
func (o *jsonObject) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return o
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from '%s' to '%s'", types.MapType, t)
}

// ConvertToNative converts the object as CEL converts a map[string]any holding the same values.
func (o *jsonObject) ConvertToNative(t reflect.Type) (any, error) {
	return types.DefaultTypeAdapter.NativeToValue(plainJSON(o)).ConvertToNative(t)
}

// plainJSON returns v with every *jsonObject in it turned into a map[string]any.
func plainJSON(v any) any {
	switch v := v.(type) {
	case *jsonObject:
		m := make(map[string]any, len(v.m))
		for k, x := range v.m {
			m[k] = plainJSON(x)
		}
		return m
	case []any:
		l := make([]any, len(v))
		for i, x := range v {
			l[i] = plainJSON(x)
		}
		return l
	}
	return v
}

// keyIterator walks a jsonObject's keys.
type keyIterator struct {
	keys []string
	next int
}

func (it *keyIterator) HasNext() ref.Val { return types.Bool(it.next < len(it.keys)) }

func (it *keyIterator) Next() ref.Val {
	if it.next >= len(it.keys) {
		return nil
	}
	it.next++
	return types.String(it.keys[it.next-1])
}

func (it *keyIterator) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("type conversion on iterators not supported")
}

func (it *keyIterator) ConvertToType(ref.Type) ref.Val { return types.NewErr("no such overload") }

func (it *keyIterator) Equal(ref.Val) ref.Val { return types.NewErr("no such overload") }

func (it *keyIterator) Type() ref.Type { return types.IteratorType }

func (it *keyIterator) Value() any { return nil }
