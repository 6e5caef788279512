// Package manifest reads and writes a package's model_config.json, the
// "offline manifest" version 4 of the on-disk contract (§6).
//
// The manifest is the last file written into a package directory: its
// presence with offline_manifest_version 4 marks the package complete (§6.8),
// and its content pins the package's provenance, so that a package id, once
// published, can never silently change meaning (§6.5, §6.7).
//
// Byte compatibility: Encode produces exactly the reference's bytes (compact
// pyjson, insertion order, no trailing newline). ContentHash is hash_dict of
// the parsed document (§5.5), the value dependents record as
// package_manifest_hash.
//
// Improvement (compatible): Write creates the file with mode 0644 instead of
// the reference's 0600 (temp-file default). Readers only need read access,
// and 0644 lets another UID sharing the cache read it (§3).
package manifest
