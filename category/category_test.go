package category

import (
	"errors"
	"fmt"
	"testing"
)

func TestNew(t *testing.T) {
	notFound := New(ErrRefused, "disk not found")
	err := fmt.Errorf("serial %q: no disk has it: %w", "X", notFound)
	if got, want := err.Error(), `serial "X": no disk has it: disk not found`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	if !errors.Is(err, notFound) || !errors.Is(err, ErrRefused) {
		t.Errorf("errors.Is(%v, sentinel / ErrRefused) = %v / %v, want both", err, errors.Is(err, notFound), errors.Is(err, ErrRefused))
	}
	for _, other := range []error{ErrUsage, ErrIntegrity, ErrSource, ErrIO} {
		if errors.Is(err, other) {
			t.Errorf("errors.Is(%v, %v) = true, want one category only", err, other)
		}
	}
}
