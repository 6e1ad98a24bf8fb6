module bty

go 1.26.0

require (
	github.com/dsnet/compress v0.0.1
	github.com/klauspost/compress v1.20.4
	github.com/ulikunitz/xz v0.5.17
	golang.org/x/sync v0.25.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	github.com/pelletier/go-toml/v2 v2.4.3 // indirect
	oras.land/oras-go/v2 v2.7.0 // indirect
)
