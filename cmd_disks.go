package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"bty/disks"
)

// diskJSON is one disk of bty disks --json: the InventoryDisk fields of
// docs/server-protocol.md, then what bty knows besides.
type diskJSON struct {
	disks.InventoryDisk
	ByID           []string          `json:"by_id"`
	WWN            string            `json:"wwn"`
	LogicalSector  int               `json:"logical_sector_size"`
	PhysicalSector int               `json:"physical_sector_size"`
	Rotational     bool              `json:"rotational"`
	BackingFile    string            `json:"backing_file,omitempty"`
	Partitions     []disks.Partition `json:"partitions"`
	Verdict        disks.Verdict     `json:"verdict"`
}

// cmdDisks: bty disks [--json] [--all]. Without --all, refused disks and loop
// devices are left out (and counted in a footer line, or in "hidden" with --json).
func cmdDisks(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "disks", "bty disks [--json] [--all]\n\nLists the disks bty could write, with their safety verdicts.")
	asJSON := fs.Bool("json", false, "print the disks as JSON")
	all := fs.Bool("all", false, "also show loop devices and refused disks, with why")
	if ok, err := parseFlags(fs, args); !ok {
		return err
	}
	return showDisks(e, disks.Roots{}, *asJSON, *all)
}

// showDisks prints the disks of the machine that r describes.
func showDisks(e env, r disks.Roots, asJSON, all bool) error {
	ds, err := disks.List(r)
	if err != nil {
		return err
	}
	var shown []disks.Disk
	var verdicts []disks.Verdict
	hidden := 0
	for _, d := range ds {
		v := d.Verdict(disks.Check{})
		if !all && (v.Level == disks.Refused || d.Transport == disks.TranLoop) {
			hidden++
			continue
		}
		shown = append(shown, d)
		verdicts = append(verdicts, v)
	}
	if asJSON {
		out := struct {
			Disks  []diskJSON `json:"disks"`
			Hidden int        `json:"hidden"`
		}{Disks: []diskJSON{}, Hidden: hidden}
		for i, d := range shown {
			out.Disks = append(out.Disks, diskJSON{
				InventoryDisk:  d.Inventory(),
				ByID:           d.ByID,
				WWN:            d.WWN,
				LogicalSector:  d.LogicalSector,
				PhysicalSector: d.PhysicalSector,
				Rotational:     d.Rotational,
				BackingFile:    d.BackingFile,
				Partitions:     d.Partitions,
				Verdict:        verdicts[i],
			})
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printDisks(e.stdout, shown, verdicts, hidden)
	return nil
}

// printDisks writes the table for an 80-column console: one line per disk, then
// its verdict's reasons indented below it. When a line would be wider than 80
// columns the model is cut first, then the serial.
func printDisks(w io.Writer, ds []disks.Disk, vs []disks.Verdict, hidden int) {
	if len(ds) == 0 {
		fmt.Fprintln(w, "no disks to show")
	} else {
		const model, serial = 4, 5 // columns that may be cut
		rows := [][]string{{"PATH", "SIZE", "TRAN", "RM", "MODEL", "SERIAL", "VERDICT"}}
		for i, d := range ds {
			rm := "no"
			if d.Removable {
				rm = "yes"
			}
			rows = append(rows, []string{d.Path, disks.HumanSize(d.SizeBytes), d.Transport, rm,
				d.Model, d.Serial, vs[i].Level.String()})
		}
		width := make([]int, len(rows[0]))
		for _, r := range rows {
			for j, c := range r {
				width[j] = max(width[j], len(c))
			}
		}
		total := 2 * (len(width) - 1)
		for _, n := range width {
			total += n
		}
		for _, col := range []struct{ i, min int }{{model, 10}, {serial, 12}} {
			if over := total - 80; over > 0 && width[col.i] > col.min {
				cut := min(over, width[col.i]-col.min)
				width[col.i] -= cut
				total -= cut
			}
		}
		for i, r := range rows {
			var b strings.Builder
			for j, c := range r {
				c = clip(c, width[j])
				switch {
				case j == len(r)-1:
					b.WriteString(c)
				case j == 1: // sizes align right
					fmt.Fprintf(&b, "%*s  ", width[j], c)
				default:
					fmt.Fprintf(&b, "%-*s  ", width[j], c)
				}
			}
			fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
			if i > 0 {
				for _, reason := range vs[i-1].Reasons {
					fmt.Fprintf(w, "    - %s\n", reason)
				}
			}
		}
	}
	if hidden > 0 {
		fmt.Fprintf(w, "%d more hidden (refused, or loop devices); bty disks --all shows them and why\n", hidden)
	}
}

// clip shortens s to n bytes, marking the cut with "~".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "~"
}
