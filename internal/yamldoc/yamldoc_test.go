package yamldoc

import (
	"errors"
	"testing"
)

func TestOne(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want error
	}{
		{"one", "a: 1\n", nil},
		{"trailing separator", "a: 1\n---\n", nil},
		{"leading separator", "---\na: 1\n", nil},
		{"json", `{"a": 1}`, nil},
		{"empty", "", nil},
		{"two", "a: 1\n---\nb: 2\n", ErrSeveral},
		{"syntax error in the first is the decoder's", "a: [\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := One([]byte(tt.doc)); !errors.Is(err, tt.want) {
				t.Fatalf("One = %v, want %v", err, tt.want)
			}
		})
	}
	if err := One([]byte("a: 1\n---\nb: [\n")); err == nil {
		t.Fatal("a syntax error after the first document passed")
	}
}
