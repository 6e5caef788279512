// Package tier is the shared S3-compatible blob tier of a fleet: lookup
// order local disk → object store → origin, best-effort and fail-open, with
// the reference's configuration (INFERENCE_MODELS_MODEL_BLOB_CACHE_*) and
// object layout (<prefix>/<md5>), so Python and Go processes share a bucket.
// The bucket itself is internal/tier/s3store; docs/fleet.md is the user's
// guide.
//
// # The engine's side
//
// The tier never writes into the cache: the download engine restores a
// blob from it exactly as it downloads one from the origin (temp file, MD5
// while streaming, size check, atomic publish into shared-blobs/), because
// a Source is just another URL of the same bytes. The engine, holding the
// blob's lock and having re-checked that the blob is still missing, does:
//
//	src, err := t.Lookup(ctx, md5, size) // one HEAD at most; never blocks on an open breaker
//	if err == nil {
//		// Fetch src.URL like an origin URL, with these differences:
//		//   - no HEAD probe (the URL is presigned for GET only): the size is
//		//     src.Size, ranges are supported, src.ETag goes in If-Range;
//		//   - use src.Client, src.StallTimeout and at most src.MaxAttempts
//		//     tries per range; src.Refresh renews an expired URL (403);
//		//   - journal and resume as usual, but on failure discard the
//		//     partial: its bytes came from an untrusted object.
//		res, ferr := fetch(ctx, src)
//		if ferr == nil {
//			src.Done(res.NetworkBytes) // verified and published
//			return res, nil
//		}
//		src.Reject(ferr) // a digest or size mismatch marks the object corrupt
//		if ctx.Err() != nil {
//			return Result{}, ctx.Err()
//		}
//	} else if ctx.Err() != nil {
//		return Result{}, ctx.Err() // a *MissError whose Err is ctx's error
//	}
//	res, err := fetchFromOrigin(ctx, item)
//	if err == nil && !res.Cached && !res.Shared { // this call downloaded, verified and published it
//		t.Offer(md5, res.Path, res.Size) // never blocks; false = not queued
//	}
//
// Lookup returns a *Source or a *MissError (errors.Is(err, ErrMiss)) whose
// Reason says why the origin is used: disabled, not_found, breaker_open,
// error, too_large, size_mismatch or distrusted. Exactly one of
// Source.Done and Source.Reject must follow a Source. Offer is called only
// after a verified origin download (never after a restore: the object is
// there), and the process calls Close(ctx) before exiting: it waits for
// queued uploads up to MODELCACHE_BLOB_CACHE_EXIT_WAIT_SECONDS. A nil *Tier
// is a disabled one, so an engine without a tier needs no special case.
//
// # What is verified
//
// Restored bytes are verified by the engine (MD5 and size against the
// provider's metadata) before they are published: the tier only chooses
// where they come from. An object whose HEAD size is not the blob's, or
// that is over MAX_OBJECT_BYTES, is not even fetched; one whose bytes the
// engine rejects is distrusted by this process and replaced by the next
// verified upload (uploads skip existing objects otherwise). Uploads stream
// the local file through s3store's Put, which re-hashes it and publishes
// nothing on a mismatch, so a blob that was not verified never reaches the
// bucket.
//
// # Failing open
//
// A misconfigured tier is disabled at New with one warning. An unreachable
// or failing one trips a circuit breaker (separate ones for reads and
// writes, the reference's leaky failure count, epoch-tagged outcomes): after
// FAILURE_THRESHOLD failures the tier is skipped for COOLDOWN_SECONDS, then
// one probe is let through. The first trip logs one warning; later trips log
// at debug level until the tier works again. Background uploads are bounded
// (UPLOAD_WORKERS running, UPLOAD_QUEUE waiting); a full queue drops the
// offer and counts it. OFFLINE_MODE disables the tier: it never dials.
package tier
