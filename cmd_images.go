package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"bty/catalog"
	"bty/units"
)

// cmdImages: bty images [--catalog SRC]... [--json]
func cmdImages(ctx context.Context, e env, args []string) error {
	var catalogs multiFlag
	var asJSON, plainHTTP bool
	fs := newFlagSet(e, "images", "bty images [--catalog SRC]... [--json]\n\nLists the images of the image root ($BTY_IMAGE_ROOT, else /var/lib/bty/images)\nand of the catalogs, as --image finds them.")
	fs.Var(&catalogs, "catalog", "catalog `SRC` (TOML file, http(s) URL, oras:// ref); repeatable")
	fs.BoolVar(&asJSON, "json", false, "print a JSON array")
	fs.BoolVar(&plainHTTP, "plain-http", false, "talk plain HTTP to oras:// registries that are not on loopback")
	if ok, err := parseFlags(fs, args); !ok {
		return err
	}
	r := newResolver(e, catalogs, plainHTTP)
	rows, err := r.Images(ctx)
	if err != nil {
		return err
	}
	if _, err := os.Stat(r.ImageRoot); err != nil && e.getenv("BTY_IMAGE_ROOT") != "" {
		fmt.Fprintf(e.stderr, "bty: image root %s: %v\n", r.ImageRoot, err)
	}
	if asJSON {
		if rows == nil {
			rows = []catalog.Entry{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFORMAT\tSIZE\tSHA256\tREF\tSOURCE")
	for _, row := range rows {
		format, size, sum := row.Format, "?", "unknown"
		if format == "" {
			format = "?"
		}
		if row.Size > 0 {
			size = units.Bytes(row.Size)
		}
		switch {
		case row.SHA256 != "":
			sum = "known"
		case row.Pending:
			sum = "pending"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row.Name, format, size, sum, row.Ref[:min(12, len(row.Ref))], row.From)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, row := range rows {
		if row.Note != "" {
			fmt.Fprintf(e.stderr, "bty: %s: %s\n", row.Name, row.Note)
		}
	}
	return nil
}
