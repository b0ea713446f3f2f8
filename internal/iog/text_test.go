package iog

import "testing"

func TestCheckLabel(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"plain", "rig-1 (eu)", true},
		{"unicode", "Grüße 你好", true},
		{"empty", "", false},
		{"too long", "abcdefghijk", false},
		{"escape", "a\x1b[2J", false},
		{"newline", "a\nb", false},
		{"c1", "a\u009bb", false},
		{"bidi", "a\u202eb", false},
		{"zero width", "a\u200bb", false},
		{"bad utf-8", "a\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLabel("name", tt.in, 10, false)
			if tt.name == "unicode" {
				err = CheckLabel("name", tt.in, 64, false)
			}
			if (err == nil) != tt.ok {
				t.Fatalf("CheckLabel(%q) = %v", tt.in, err)
			}
			if err != nil && ErrorCode(err) != EINVALID {
				t.Fatalf("code %s", ErrorCode(err))
			}
		})
	}
	if err := CheckLabel("name", "", 10, true); err != nil {
		t.Fatalf("optional empty: %v", err)
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"boom\x1b[2J\nnext", 100, "boom [2J next"},
		{"\u202eabc\xff", 100, "abc"},
		{"Grüße", 3, "Gr"},
		{"  x  ", 100, "x"},
	}
	for _, tt := range tests {
		if got := CleanText(tt.in, tt.max); got != tt.want {
			t.Errorf("CleanText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
	if got := Cut("Grüße", 3); got != "Gr" {
		t.Errorf("Cut = %q", got)
	}
}
