package units

import "testing"

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{512, "512 B"},
		{1536, "1.5 KiB"},
		{1<<20 - 1, "1.0 MiB"},
		{1048575 - 400, "1.0 MiB"},
		{1023 << 10, "1023 KiB"},
		{100 << 20, "100 MiB"},
		{100<<20 - 1, "100 MiB"},
		{143<<20 + 200<<10, "143 MiB"},
		{2 << 30, "2.0 GiB"},
	} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
