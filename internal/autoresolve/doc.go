// Package autoresolve implements the auto-resolution cache of the on-disk
// contract (§8): <H>/auto-resolution-cache/<key>.json entries that remember
// which package a load request resolved to, so that a repeated request can
// skip the weights API and negotiation.
//
//   - Key builds the 23-key request document and its hash_dict (§8.1),
//     byte-compatible with the reference, so Go and Python processes share
//     entries when their runtime fingerprints agree.
//   - Entry / MarshalEntry / ParseEntry are the entry format (§8.2): exact
//     bytes on write, the reference's (pydantic) schema on read.
//   - Cache performs register / retrieve / invalidate / purge and the
//     candidate scan (§8.3) with the lock discipline of §9, never through a
//     symlink (§11.3), and read-only in offline mode (offline.md §2, §7).
//
// Improvement (compatible): entries are written with mode 0644 instead of the
// reference's 0600; readers need read access only (§3).
package autoresolve
