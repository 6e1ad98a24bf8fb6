package ui

import (
	"context"

	"bty/catalog"
)

// Resolver is what the wizard asks of the catalog package: the lists of
// images, and an image opened to flash. The image root and the catalogs are
// the wizard's (Options.ImageRoot, and --catalog or the source screen's
// choice), so it names them on each call.
type Resolver interface {
	// Lists reads the image root and each catalog at once and sends each
	// list on the channel as it is read, then closes it (catalog.Resolver.Lists).
	Lists(ctx context.Context, root string, catalogs []string) <-chan catalog.List
	// Open opens a row of a list.
	Open(ctx context.Context, e catalog.Entry) (catalog.Resolved, error)
	// Resolve opens --image: a name in root or catalogs, a path or a URL.
	Resolve(ctx context.Context, spec, root string, catalogs []string) (catalog.Resolved, error)
}

// CatalogResolver is r as the wizard's Resolver: every list and image is
// reached as r reaches them (its HTTP client, --plain-http), in the places
// the wizard names.
func CatalogResolver(r *catalog.Resolver) Resolver { return catalogResolver{r} }

type catalogResolver struct{ r *catalog.Resolver }

func (c catalogResolver) Lists(ctx context.Context, root string, catalogs []string) <-chan catalog.List {
	return c.r.In(root, catalogs).Lists(ctx)
}

func (c catalogResolver) Open(ctx context.Context, e catalog.Entry) (catalog.Resolved, error) {
	return c.r.Open(ctx, e)
}

func (c catalogResolver) Resolve(ctx context.Context, spec, root string, catalogs []string) (catalog.Resolved, error) {
	return c.r.In(root, catalogs).Resolve(ctx, spec)
}
