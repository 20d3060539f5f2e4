package jsonstr

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestAppendUnescaped(t *testing.T) {
	tests := map[string]string{
		``:                    "",
		`plain`:               "plain",
		`a\"b\\c\/d`:          `a"b\c/d`,
		`\b\f\n\r\t`:          "\b\f\n\r\t",
		`caf\u00e9`:           "café",
		`\u00E9\u00e9`:        "éé",
		`\ud83d\ude00`:        "😀",
		`\ud83d`:              "\uFFFD",
		`\ude00\ud83d`:        "\uFFFD\uFFFD",
		`\ud83d\u0041`:        "\uFFFDA",
		`x\ud83dy`:            "x\uFFFDy",
		`already é unescaped`: "already é unescaped",
		`\u0000`:              "\x00",
		`i\u0064`:             "id",
	}
	for in, want := range tests {
		if got := string(AppendUnescaped(nil, []byte(in))); got != want {
			t.Errorf("AppendUnescaped(%q) = %q, want %q", in, got, want)
		}
	}
	// It appends: what dst held stays.
	if got := string(AppendUnescaped([]byte("k="), []byte(`v\n`))); got != "k=v\n" {
		t.Errorf("AppendUnescaped appends: got %q", got)
	}
}

// FuzzAppendUnescaped checks the decoding against encoding/json for every valid UTF-8 string
// that encoding/json accepts. (encoding/json also replaces invalid UTF-8 outside escapes, which
// AppendUnescaped copies as it is: its callers check UTF-8 where they need it.)
func FuzzAppendUnescaped(f *testing.F) {
	for _, s := range []string{`plain`, `a\"b`, `\ud83d\ude00`, `\ud83d`, `\u00e9\n`, `\/`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want string
		if !utf8.ValidString(s) || json.Unmarshal([]byte(`"`+s+`"`), &want) != nil {
			return // outside the function's contract
		}
		if got := string(AppendUnescaped(nil, []byte(s))); got != want {
			t.Fatalf("AppendUnescaped(%q) = %q, encoding/json gives %q", s, got, want)
		}
	})
}
