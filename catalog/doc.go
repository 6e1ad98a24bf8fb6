// Package catalog owns where images come from (docs/catalog.md): catalog
// TOML, canonical refs, the image root scan, and opening sources (local
// files, http(s) with resumable Range requests, oras:// registries). Every
// source satisfies the flash engine's Source interface without importing it.
//
// The flow: a Resolver scans the image root (ScanRoot: regular files whose magic
// bytes name a format, digests from .sha256 sidecars) and loads each catalog
// (Load: a path, an http(s) URL or an oras:// artifact, capped at 4 MiB, parsed
// and validated by Parse with every problem and its line; Check adds warnings
// for bty catalog check). Merge joins them into one row per canonical ref, the
// image root first. Resolve turns an IMG argument into a Resolved image: a row
// found by name, else an oras:// reference (the manifest is resolved at once,
// the disk-image layer chosen, its digest made the expected one), an http(s)
// URL, a local path, or "-" (standard input, read once). Resolved.SHA256From
// says where the expected digest came from.
//
// Server is bty serve: it lists an image directory as a catalog whose src
// points back at itself, with digests computed once per file version by one
// background worker (images not hashed yet are listed under
// [[pending_images]], which Parse reads as Pending entries that Open refuses),
// and serves the bytes with Range and ETag.
package catalog
