package ocibundle

import (
	"path"
	"strings"
)

// Media types of the OCI image spec and of the CNCF ModelPack model-spec
// (github.com/modelpack/model-spec, specs-go/v1), defined here rather than
// imported.
const (
	MediaTypeOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex    = "application/vnd.oci.image.index.v1+json"

	ArtifactTypeModelManifest = "application/vnd.cncf.model.manifest.v1+json"
	MediaTypeModelConfig      = "application/vnd.cncf.model.config.v1+json"

	MediaTypeModelWeightRaw       = "application/vnd.cncf.model.weight.v1.raw"
	MediaTypeModelWeightConfigRaw = "application/vnd.cncf.model.weight.config.v1.raw"
	MediaTypeModelDocRaw          = "application/vnd.cncf.model.doc.v1.raw"
	MediaTypeModelCodeRaw         = "application/vnd.cncf.model.code.v1.raw"

	// ArtifactTypeBundleIndex marks an image index that groups several
	// package manifests under one registry tag (a push of several packages).
	ArtifactTypeBundleIndex = "application/vnd.io.github.modelcache.bundle.v1+json"
)

// Annotation keys.
const (
	// AnnotationTitle is the OCI file name annotation `oras pull` writes files by.
	AnnotationTitle = "org.opencontainers.image.title"
	// AnnotationRefName names a manifest in an image layout's index.json.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationModelFilepath is ModelPack's file path of a layer.
	AnnotationModelFilepath = "org.cncf.model.filepath"
	// AnnotationModelFileMetadata is ModelPack's file metadata of a layer.
	AnnotationModelFileMetadata = "org.cncf.model.file.metadata+json"

	// AnnotationMD5 is the provider MD5 of a layer's bytes.
	AnnotationMD5 = "io.github.modelcache.md5"
	// AnnotationPackage holds a package's Document (JSON).
	AnnotationPackage = "io.github.modelcache.package.v1+json"
	// AnnotationModelID and AnnotationPackageID name a package in index
	// entries, so a listing needs no manifest fetch.
	AnnotationModelID   = "io.github.modelcache.model-id"
	AnnotationPackageID = "io.github.modelcache.package-id"
)

// OCI image layout file names.
const (
	layoutFile    = "oci-layout"
	indexFile     = "index.json"
	blobsDir      = "blobs"
	layoutVersion = "1.0.0"
)

// layerMediaType picks the ModelPack layer type for a file handle: text
// configuration, documentation and code by name, weights for the rest.
func layerMediaType(handle string) string {
	base := strings.ToLower(path.Base(handle))
	ext := path.Ext(base)
	switch {
	case strings.HasPrefix(base, "readme") || strings.HasPrefix(base, "license") || ext == ".md":
		return MediaTypeModelDocRaw
	case ext == ".py":
		return MediaTypeModelCodeRaw
	}
	switch ext {
	case ".json", ".txt", ".yaml", ".yml", ".cfg", ".names", ".csv", ".xml", ".ini", ".toml":
		return MediaTypeModelWeightConfigRaw
	}
	return MediaTypeModelWeightRaw
}

// isLayerMediaType reports whether a layer type is one this package writes
// (raw ModelPack layers); tar layers of other tools are refused on import.
func isLayerMediaType(mt string) bool {
	switch mt {
	case MediaTypeModelWeightRaw, MediaTypeModelWeightConfigRaw, MediaTypeModelDocRaw, MediaTypeModelCodeRaw:
		return true
	}
	return false
}
