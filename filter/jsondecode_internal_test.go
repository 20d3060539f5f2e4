package filter

import (
	"reflect"
	"testing"

	"github.com/google/cel-go/common/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestJSONObjectConvertsAsAMap: a decoded object converts to Go and protobuf values as CEL
// converts a map[string]any, with the objects inside it plain maps too.
func TestJSONObjectConvertsAsAMap(t *testing.T) {
	v, err := decodeJSON([]byte(`{"a":1,"b":[{"c":"x"},null],"d":{"e":2.5}}`))
	require.NoError(t, err)
	o, ok := v.(jsonObject)
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
