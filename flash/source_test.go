package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"bty/category"
)

// flakySource serves data, but each Open delivers at most per bytes and then
// fails with cut; announce overrides the size it reports.
type flakySource struct {
	data     []byte
	per      int
	cut      error
	openErr  error
	announce int64
	opens    int
}

type permErr struct{}

func (permErr) Error() string   { return "404 not found" }
func (permErr) Permanent() bool { return true }

func (s *flakySource) Name() string { return "flaky.img" }

func (s *flakySource) Open(_ context.Context, off int64) (io.ReadCloser, int64, error) {
	s.opens++
	if s.openErr != nil {
		return nil, -1, s.openErr
	}
	size := int64(len(s.data))
	if s.announce != 0 {
		size = s.announce
	}
	end := len(s.data)
	if s.per > 0 {
		end = min(end, int(off)+s.per)
	}
	var r io.Reader = bytes.NewReader(s.data[off:end])
	if end < len(s.data) && s.cut != nil {
		r = io.MultiReader(r, errReader{s.cut})
	}
	return io.NopCloser(r), size, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestResumeReader(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 10000)
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	fast := Retry{Backoff: time.Millisecond}
	for _, tc := range []struct {
		name   string
		src    *flakySource
		digest string
		want   error  // nil: reads all data
		msg    string // in the error
		opens  int    // 0: don't check
	}{
		{"clean", &flakySource{data: data}, good, nil, "", 1},
		{"cut every 30000 bytes", &flakySource{data: data, per: 30000, cut: io.ErrUnexpectedEOF}, good, nil, "", 4},
		{"wrong digest", &flakySource{data: data}, strings.Repeat("0", 64), ErrDigestMismatch, "sha256", 1},
		{"announced longer than delivered", &flakySource{data: data, announce: int64(len(data)) + 5}, "", ErrLengthMismatch, "ended at byte 100000 of 100005", 6},
		{"not found is not retried", &flakySource{openErr: permErr{}}, "", permErr{}, "404", 1},
		{"network down gives up", &flakySource{openErr: errors.New("connection refused")}, "", errors.New(""), "connection refused", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newResumeReader(context.Background(), tc.src, 0, tc.digest, fast)
			got, err := io.ReadAll(r)
			switch {
			case tc.want == nil && (err != nil || !bytes.Equal(got, data)):
				t.Fatalf("ReadAll = %d bytes, %v; want %d bytes, nil", len(got), err, len(data))
			case tc.want != nil && (err == nil || !strings.Contains(err.Error(), tc.msg)):
				t.Fatalf("ReadAll error = %v, want one mentioning %q", err, tc.msg)
			case tc.want == ErrDigestMismatch || tc.want == ErrLengthMismatch:
				if !errors.Is(err, tc.want) || !errors.Is(err, category.ErrIntegrity) {
					t.Errorf("ReadAll error = %v, want %v (an integrity error)", err, tc.want)
				}
			}
			if tc.want != nil && tc.want != ErrDigestMismatch && tc.want != ErrLengthMismatch {
				var ioe *IOError
				if !errors.As(err, &ioe) || ioe.Side != SideSource {
					t.Errorf("ReadAll error = %#v, want a source IOError", err)
				}
			}
			if tc.opens > 0 && tc.src.opens != tc.opens {
				t.Errorf("source opened %d times, want %d", tc.src.opens, tc.opens)
			}
			if tc.want == nil && r.sum() != good {
				t.Errorf("sum = %s, want %s", r.sum(), good)
			}
		})
	}
}

func TestResumeReaderCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &flakySource{openErr: errors.New("connection refused")}
	r := newResumeReader(ctx, src, 0, "", Retry{Backoff: time.Hour})
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if _, err := io.ReadAll(r); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAll after cancel = %v, want context.Canceled", err)
	}
}
