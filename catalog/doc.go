// Package catalog owns where images come from: catalog TOML (WIRE.md sections
// 1-2), canonical refs, the image root scan (section 3), and opening sources
// (local files, http(s) with resumable Range requests, oras:// registries). Every
// source satisfies the flash engine's Source interface without importing it.
package catalog
