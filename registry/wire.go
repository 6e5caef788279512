package registry

import (
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider/roboflow"
)

// wireRecommended converts parameters to the camelCase wire object (nil for nil).
func wireRecommended(r *metadata.RecommendedParameters) any {
	if r == nil {
		return nil
	}
	o := pyjson.NewObject()
	if r.Confidence != nil {
		o.Set("confidence", *r.Confidence)
	} else {
		o.Set("confidence", nil)
	}
	if r.PerClassConfidence != nil {
		pc := pyjson.NewObject()
		for _, e := range r.PerClassConfidence {
			pc.Set(e.Class, e.Confidence)
		}
		o.Set("perClassConfidence", pc)
	} else {
		o.Set("perClassConfidence", nil)
	}
	return o
}

func wireDependencies(deps []metadata.ModelDependency) any {
	if deps == nil {
		return nil
	}
	out := make([]any, 0, len(deps))
	for _, d := range deps {
		o := pyjson.ObjectOf("type", roboflow.TypeDependencyV1, "name", d.Name, "modelId", d.ModelID)
		if d.ModelPackageID != nil {
			o.Set("modelPackageId", *d.ModelPackageID)
		} else {
			o.Set("modelPackageId", nil)
		}
		out = append(out, o)
	}
	return out
}

// wireEntity builds the package entity of the weights API, with URLs and
// MD5s given by the callbacks.
func wireEntity(p *Package, url func(*File) string, md5 func(*File) string) *pyjson.Object {
	files := make([]any, 0, len(p.Files))
	for _, f := range p.Files {
		files = append(files, pyjson.ObjectOf("fileHandle", f.Handle, "downloadUrl", url(f), "md5Hash", md5(f)))
	}
	o := pyjson.ObjectOf(
		"type", roboflow.TypeModelPackageV1,
		"packageId", p.ID,
		"packageManifest", p.Manifest,
		"packageFiles", files,
		"modelFeatures", p.Features,
		"trustedSource", p.Trusted,
	)
	if p.Recommended != nil {
		o.Set("recommendedParameters", wireRecommended(p.Recommended))
	}
	return o
}
