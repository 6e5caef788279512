package download

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// reserveFloor is kept free beyond every need: the journal, manifest,
// records and entries written beside the bytes.
const reserveFloor = 1 << 20

// reserve is the free space a download of missing bytes leaves beyond
// them: Tuning.DiskReservePercent of them plus reserveFloor.
func (t Tuning) reserve(missing int64) int64 {
	return int64(float64(max(missing, 0))*t.DiskReservePercent/100) + reserveFloor
}

func (e *Engine) freeBytes(dir string) (int64, bool, error) {
	if e.hooks.freeBytes != nil {
		return e.hooks.freeBytes(dir)
	}
	return freeBytes(dir)
}

// checkSpace fails fast when the filesystem of dir cannot hold missing
// bytes plus the reserve (download.md §2.8, proportional reserve). what
// names the need in the error ("weights.onnx", "5 files of the package").
// On network filesystems the numbers are unreliable: it only warns.
func (e *Engine) checkSpace(dir, what string, missing int64) error {
	if !e.tune.CheckFreeSpace || missing <= 0 {
		return nil
	}
	free, network, err := e.freeBytes(dir)
	if err != nil {
		return nil
	}
	need := missing + e.tune.reserve(missing)
	if free >= need {
		return nil
	}
	if network {
		e.log.Warn(fmt.Sprintf("the filesystem of %s reports %s free, %s needed for %s; continuing (network filesystem)", dir, mib(free), mib(need), what))
		return nil
	}
	return &DiskError{Path: dir, What: what, Need: need, Missing: missing, Free: free}
}

// checkItemSpace checks one file's need, unless its batch was checked.
func (e *Engine) checkItemSpace(it Item, dir string, missing int64) error {
	if it.spaceChecked {
		return nil
	}
	return e.checkSpace(dir, it.label(), missing)
}

// checkBatchSpace checks the batch's total need at once, so that the
// message names the whole need rather than the file that happened to come
// last. Sizes the caller did not give are probed first (HEAD, in
// parallel); the probe results go into items for the downloads to use.
// Bytes already on disk in resumable partials are not needed again.
func (e *Engine) checkBatchSpace(ctx context.Context, items []Item, todo []int) error {
	if !e.tune.CheckFreeSpace {
		return nil
	}
	var g errgroup.Group
	g.SetLimit(e.tune.FilesInParallel)
	for _, i := range todo {
		if items[i].Size > 0 || items[i].URL == "" {
			continue
		}
		g.Go(func() error {
			pr := e.probe(ctx, items[i].URL)
			items[i].probed = &pr
			return nil
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var missing int64
	for _, i := range todo {
		it := items[i]
		size := max(it.Size, 0)
		if size == 0 && it.probed != nil {
			size = max(it.probed.size, 0)
		}
		if it.Dest == "" && it.MD5 != "" && size > 0 {
			size -= min(e.sampleHolder(it.MD5).bytes, size)
		}
		missing += size
	}
	what := fmt.Sprintf("%d file(s) of this batch", len(todo))
	if len(todo) == 1 {
		what = items[todo[0]].label()
	}
	return e.checkSpace(e.blobs.Dir(), what, missing)
}

// spaceGuard watches a download of unknown size as it grows (see
// checkUnknownSize). Only the job's single stream uses it.
type spaceGuard struct {
	dir       string // the filesystem to watch
	nextCheck int64  // bytes written at which free space is measured next
}

// spaceEvery is the longest gap between two free-space measurements.
const spaceEvery = 64 << 20

// checkUnknownSize is called with the bytes written so far by a download
// whose size nobody announced: past Tuning.MaxUnknownSize it fails, and it
// stops before the filesystem's free space falls below the reserve.
func (j *job) checkUnknownSize(written int64) error {
	t := j.e.tune
	if written > t.MaxUnknownSize {
		return &SizeLimitError{Name: j.name, URL: j.safe, Limit: t.MaxUnknownSize, Written: written}
	}
	if !t.CheckFreeSpace || written < j.guard.nextCheck {
		return nil
	}
	free, network, err := j.e.freeBytes(j.guard.dir)
	if err != nil || network {
		j.guard.nextCheck = written + spaceEvery
		return nil
	}
	r := t.reserve(written)
	if free < r {
		return &DiskError{Path: j.guard.dir, What: j.name, Op: "write", Written: written, Free: free, Reserve: r}
	}
	// Look again after half the headroom left (at least every 1 MiB, at
	// most every spaceEvery): the reserve is overshot by at most 1 MiB.
	j.guard.nextCheck = written + min(max((free-r)/2, 1<<20), spaceEvery)
	return nil
}
