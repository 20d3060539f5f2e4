package filter

import (
	"reflect"
	"testing"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestJSONObjectConvertsAsAMap: a decoded object converts to Go and protobuf values as CEL
// converts a map[string]any, with the objects inside it plain maps too.
func TestJSONObjectConvertsAsAMap(t *testing.T) {
	v, err := decodeJSON([]byte(`{"a":1,"b":[{"c":"x"},null],"d":{"e":2.5}}`))
	require.NoError(t, err)
	o, ok := v.(*jsonObject)
	require.True(t, ok, "%T", v)

	want := map[string]any{"a": int64(1), "b": []any{map[string]any{"c": "x"}, nil}, "d": map[string]any{"e": 2.5}}
	got, err := o.ConvertToNative(reflect.TypeFor[map[string]any]())
	require.NoError(t, err)
	assert.Equal(t, want, got)

	s, err := o.ConvertToNative(reflect.TypeFor[*structpb.Struct]())
	require.NoError(t, err)
	wantStruct, err := structpb.NewStruct(map[string]any{"a": 1, "b": []any{map[string]any{"c": "x"}, nil}, "d": map[string]any{"e": 2.5}})
	require.NoError(t, err)
	assert.Equal(t, wantStruct.AsMap(), s.(*structpb.Struct).AsMap())

	assert.Equal(t, o, o.ConvertToType(types.MapType))
	assert.Equal(t, types.MapType, o.ConvertToType(types.TypeType))
	assert.True(t, types.IsError(o.ConvertToType(types.StringType)))
}

// TestDeepSize: the body's values and CEL's own count alike, and counting stops at its limit.
func TestDeepSize(t *testing.T) {
	v, err := decodeJSON([]byte(`[[1,2],{"k":"0123456789abcdefghij"},"x"]`))
	require.NoError(t, err)
	// outer list 1, [1,2] 3, object 1 + key 1 + string 3, "x" 1
	const want = 10
	body := types.DefaultTypeAdapter.NativeToValue(v)
	literal := types.DefaultTypeAdapter.NativeToValue([]ref.Val{
		types.DefaultTypeAdapter.NativeToValue([]any{int64(1), int64(2)}),
		types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{"k": "0123456789abcdefghij"}),
		types.String("x"),
	})
	for _, x := range []any{v, body, literal} {
		assert.Equal(t, uint64(want), deepSize(x, 1000), "%T", x)
		assert.Equal(t, uint64(4), deepSize(x, 4), "%T", x)
	}
	assert.Equal(t, uint64(want), equalityCost(body, literal, DefaultCostLimit))

	// A concatenation counts what both lists hold, the objects in them included, and so does an
	// object as a Go map.
	concat := body.(traits.Lister).Add(literal)
	assert.Equal(t, uint64(1+2*(want-1)), deepSize(concat, 1000))
	assert.Equal(t, uint64(5), deepSize(map[string]any{"k": "0123456789abcdefghij"}, 1000))
}
