package jsonstr

import (
	"encoding/json"
	"strings"
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

func TestLoneSurrogate(t *testing.T) {
	tests := map[string]bool{
		``:              false,
		`plain`:         false,
		`\ud83d\ude00`:  false,
		`\uD83D\uDE00`:  false,
		`\ufffd`:        false,
		"\uFFFD":        false,
		`\\ud83d`:       false, // an escaped backslash, then text
		`\ud83d`:        true,
		`\uDEAD`:        true,
		`\ude00\ud83d`:  true,
		`\ud83d\u0041`:  true,
		`x\ud83dy`:      true,
		`\ud83d\ud83d`:  true,
		`a\"\udead`:     true,
		`\u00e9\ud800x`: true,
	}
	for in, want := range tests {
		if got := LoneSurrogate([]byte(in)); got != want {
			t.Errorf("LoneSurrogate(%q) = %v, want %v", in, got, want)
		}
	}
}

// FuzzLoneSurrogate checks LoneSurrogate against AppendUnescaped: on contents that spell no
// U+FFFD of their own, it reports exactly the strings whose decoding holds a U+FFFD.
func FuzzLoneSurrogate(f *testing.F) {
	for _, s := range []string{`plain`, `\ud83d\ude00`, `\ud83d`, `\ude00\ud83d`, `\\ud83d`, `\ud83d\u0041`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v string
		if !utf8.ValidString(s) || json.Unmarshal([]byte(`"`+s+`"`), &v) != nil {
			return // not valid JSON string contents: outside the function's contract
		}
		if strings.ContainsRune(s, utf8.RuneError) || strings.Contains(strings.ToLower(s), `\ufffd`) {
			return // a U+FFFD of its own
		}
		want := strings.ContainsRune(string(AppendUnescaped(nil, []byte(s))), utf8.RuneError)
		if got := LoneSurrogate([]byte(s)); got != want {
			t.Fatalf("LoneSurrogate(%q) = %v, but its decoding %q", s, got, AppendUnescaped(nil, []byte(s)))
		}
	})
}
