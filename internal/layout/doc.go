// Package layout names everything the cache stores under INFERENCE_HOME and
// validates every identifier before it becomes part of a path.
//
// It reproduces the reference (inference-models 0.36.0) exactly where bytes
// matter: the model-id slug (BLAKE2s-128 of the id), package ids, artefact
// file handles, dependency names, the canonical package-artefact
// declarations and the download-source hash of unhashed artefacts.
//
// Paths are built lexically: nothing here touches the file system, resolves
// symlinks or cleans a caller's root beyond Python's os.path.abspath, so the
// strings equal the ones the reference writes into links and entries.
package layout
