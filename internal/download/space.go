package download

import (
	"fmt"
)

// checkSpace fails fast when the filesystem of dir cannot hold the missing
// bytes of this file with 1 % and 64 MiB of headroom (download.md §2.8). On network filesystems the numbers
// are unreliable: it only warns.
func (e *Engine) checkSpace(dir string, size, reused int64) error {
	if !e.tune.CheckFreeSpace || size <= 0 {
		return nil
	}
	missing := size - reused
	free, network, err := freeBytes(dir)
	if err != nil {
		return nil
	}
	need := missing + size/100 + 64<<20
	if free >= need {
		return nil
	}
	if network {
		e.log.Warn(fmt.Sprintf("the filesystem of %s reports %s free, %s needed; continuing (network filesystem)", dir, mib(free), mib(need)))
		return nil
	}
	return &DiskError{Path: dir, Need: need, Free: free}
}

// checkSpaceFor checks the sum of the sizes callers announced for a batch.
func (e *Engine) checkSpaceFor(items []Item, todo []int) error {
	var sum int64
	for _, i := range todo {
		sum += max(items[i].Size, 0)
	}
	if sum == 0 {
		return nil
	}
	return e.checkSpace(e.blobs.Dir(), sum, 0)
}
