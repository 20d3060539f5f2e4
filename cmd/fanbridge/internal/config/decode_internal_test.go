package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestWholeNumbersThatDoNotFitAreRefused decodes into an int32, which is what an int is on a
// 32-bit platform: 2^32 must be refused, not stored as its low 32 bits (0, "the default").
func TestWholeNumbersThatDoNotFitAreRefused(t *testing.T) {
	type narrow struct {
		N int32 `yaml:"n"`
	}
	for _, tc := range []struct {
		text    string
		want    int32
		wantErr string
	}{
		{text: "n: 2147483647", want: 2147483647},
		{text: "n: -2147483648", want: -2147483648},
		{text: "n: 4294967296", wantErr: "n: want a whole number that fits in 32 bits, got \"4294967296\" (line 1)"},
		{text: "n: 2147483648", wantErr: "n: want a whole number that fits in 32 bits, got \"2147483648\" (line 1)"},
		{text: "n: ${BIG}", wantErr: "n: want a whole number that fits in 32 bits, got " + fromEnvText},
	} {
		t.Run(tc.text, func(t *testing.T) {
			root, err := document([]byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			errs := &Errors{}
			lookup := func(name string) (string, bool) { return "4294967296", name == "BIG" }
			d := newDecoder(root, lookup, errs)
			var got narrow
			d.decode(root, reflect.ValueOf(&got).Elem(), "")
			err = errs.err()
			if tc.wantErr == "" {
				if err != nil || got.N != tc.want {
					t.Fatalf("got %d, %v; want %d", got.N, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %d, %v; want an error containing %q", got.N, err, tc.wantErr)
			}
			if got.N != 0 {
				t.Fatalf("a refused value was stored: %d", got.N)
			}
		})
	}
}
