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

func TestWrap(t *testing.T) {
	leaf := errors.New("corrupt block")
	err := Wrap(ErrIntegrity, fmt.Errorf("block 3: %w", leaf))
	if got, want := err.Error(), "block 3: corrupt block"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	if !errors.Is(err, leaf) || !errors.Is(err, ErrIntegrity) || errors.Is(err, ErrSource) {
		t.Errorf("errors.Is(%v, leaf / ErrIntegrity / ErrSource) = %v / %v / %v, want true, true, false",
			err, errors.Is(err, leaf), errors.Is(err, ErrIntegrity), errors.Is(err, ErrSource))
	}
}
