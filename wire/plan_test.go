package wire

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParsePlan: whatever a server answers, ParsePlan either refuses it or
// returns a plan the client can follow as it is: a known mode, the fields that
// mode needs, a digest of 64 lower-case hex digits; and that plan, sent
// again, reads back the same.
func FuzzParsePlan(f *testing.F) {
	sum := "3F2A9C01" + "00000000000000000000000000000000000000000000000000000000"
	for _, s := range []string{
		`{"mode":"flash","image":"http://s/images/a.img.xz","target_disk_serial":"S1","name":"a.img.xz","format":"img.xz","disk_image_sha":"` + sum + `"}`,
		`{"mode":"flash","image":"oras://r/o/i:1","target_disk_serial":"S1","plan_id":7,"agent_token":"t"}`,
		`{"mode":"flash","image":"http://s/images/a.img","target_disk_serial":"S1","delta":true,"block_index":"http://s/blocks/` + sum + `.index","block_index_digest":"sha256:` + sum + `"}`,
		`{"mode":"flash","image":"http://s/images/a.img","target_disk_serial":"S1","delta":true,"block_index":"http://s/x.index"}`,
		`{"mode":"interactive","catalog":"http://s/catalog.toml"}`,
		`{"mode":"inventory"}`,
		`{"mode":"exit","reason":"quarantined"}`,
		`{"mode":"flash","image":"http://s/a"}`,
		`{"mode":"reboot"}`,
		`{"mode":"flash","image":"x","target_disk_serial":"s","disk_image_sha":"xyz"}`,
		`[1,2]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePlan(b)
		if err != nil {
			return
		}
		switch p.Mode {
		case ModeFlash:
			if p.Image == "" || p.TargetDiskSerial == "" {
				t.Fatalf("flash plan %+v without image or serial", p)
			}
			if s, ok := NormalizeSHA256(p.DiskImageSHA); p.DiskImageSHA != "" && (!ok || s != p.DiskImageSHA) {
				t.Fatalf("flash plan digest %q is not 64 lower-case hex digits", p.DiskImageSHA)
			}
			if (p.BlockIndex == "") != (p.BlockIndexDigest == "") {
				t.Fatalf("flash plan with block_index %q and block_index_digest %q: one without the other", p.BlockIndex, p.BlockIndexDigest)
			}
			if hx, ok := strings.CutPrefix(p.BlockIndexDigest, "sha256:"); p.BlockIndexDigest != "" && (!ok || len(hx) != 64 || strings.ToLower(hx) != hx) {
				t.Fatalf("flash plan block_index_digest %q is not sha256:<64 lower-case hex digits>", p.BlockIndexDigest)
			}
		case ModeInteractive:
			if p.Catalog == "" {
				t.Fatalf("interactive plan %+v without catalog", p)
			}
		case ModeInventory, ModeExit:
		default:
			t.Fatalf("plan of mode %q taken", p.Mode)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParsePlan(again)
		if err != nil || q != p {
			t.Fatalf("plan %+v sent again reads %+v, %v", p, q, err)
		}
	})
}
