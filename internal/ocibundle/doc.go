// Package ocibundle moves model packages between caches as OCI artifacts:
// as an OCI image layout (a directory or a tar file) carried across an air
// gap, or through any OCI registry.
//
// # Format
//
// Every package is one OCI image manifest (mediaType
// application/vnd.oci.image.manifest.v1+json) following the CNCF ModelPack
// model-spec: artifactType application/vnd.cncf.model.manifest.v1+json, a
// schema-valid ModelPack config (application/vnd.cncf.model.config.v1+json)
// and one uncompressed layer per file of the package (…weight.v1.raw,
// …weight.config.v1.raw, …doc.v1.raw, …code.v1.raw by file kind). A layer
// is the file's bytes; its annotations name it (org.opencontainers.image.title
// and org.cncf.model.filepath = the file handle) and carry the provider MD5
// (io.github.modelcache.md5). So ModelPack tools and `oras pull` list and
// fetch the files with their names.
//
// The ModelPack config admits no extra fields, so what modelcache needs on
// the far side travels in the manifest annotation
// io.github.modelcache.package.v1+json (Document): the package's
// model_config.json fields, the model's metadata as the provider announced it
// (the offline-weights registry record when the source cache has one,
// otherwise reconstructed from the package manifest) and the ids it was
// asked for by. An import writes the offline-weights registry record from it,
// so OFFLINE_MODE loads (ours and the reference's) negotiate and load the
// package.
//
// A bundle is an OCI image layout (oci-layout, index.json, blobs/sha256/…)
// whose index lists the package manifests. Blobs shared by packages are
// stored once. Output is deterministic: the same cache gives the same
// digests and, for tar files, the same bytes.
//
// # Import safety
//
// Import reads nothing it has not checked: tar entries other than the layout
// files and sha256 blobs, links, devices, path escapes, oversized metadata,
// truncated archives, blobs whose bytes differ from their descriptor (size,
// sha256) or from the provider MD5, and manifests naming missing blobs are
// refused with typed errors before anything is published. Verified layers
// are written as private partials in shared-blobs, committed only when every
// blob of the bundle verified; packages are then materialized under their
// locks (manifest last) and only then is the registry record written. An
// interrupted import leaves at most unpublished partials (removed by gc) and
// verified blobs; running it again completes it.
package ocibundle
