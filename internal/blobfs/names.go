package blobfs

import (
	"regexp"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/fsx"
)

// Kind classifies a directory entry of shared-blobs, for GC and doctor.
type Kind int

const (
	KindUnknown       Kind = iota
	KindBlob               // <md5>
	KindLock               // .<md5>.lock
	KindPartial            // .<md5>.partial-<token>: ours, in-progress or abandoned
	KindJournal            // .<md5>.partial-<token>.json: journal of a resumable partial
	KindCorrupt            // .<md5>.corrupt-<token>: a corrupt blob moved aside by Repair
	KindReferenceTemp      // <md5>.<uuid4>: the reference downloader's temp
	KindAtomicTemp         // .<name>.<rand8>.tmp: WriteFileAtomic leftover (e.g. of a journal)
)

var kindNames = [...]string{"unknown", "blob", "lock", "partial", "journal", "corrupt", "reference-temp", "atomic-temp"}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return "unknown"
	}
	return kindNames[k]
}

var (
	lockRE    = regexp.MustCompile(`^\.([0-9a-f]{32})\.lock$`)
	partialRE = regexp.MustCompile(`^\.([0-9a-f]{32})\.partial-[0-9a-f]{16}(\.json)?$`)
	corruptRE = regexp.MustCompile(`^\.([0-9a-f]{32})\.corrupt-[0-9a-f]{16}$`)
	refTmpRE  = regexp.MustCompile(`^([0-9a-f]{32})\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// Classify names the kind of a shared-blobs entry and the MD5 it belongs to
// ("" if none). Put's temp files are KindPartial; they never have a journal,
// so GC should treat a journal-less partial as abandoned once its mtime is
// older than the partial grace period (download.md §3 rule 7).
func Classify(name string) (Kind, string) {
	if blobstore.ValidateMD5(name) == nil {
		return KindBlob, name
	}
	if m := lockRE.FindStringSubmatch(name); m != nil {
		return KindLock, m[1]
	}
	if m := partialRE.FindStringSubmatch(name); m != nil {
		if m[2] != "" {
			return KindJournal, m[1]
		}
		return KindPartial, m[1]
	}
	if m := corruptRE.FindStringSubmatch(name); m != nil {
		return KindCorrupt, m[1]
	}
	if m := refTmpRE.FindStringSubmatch(name); m != nil {
		return KindReferenceTemp, m[1]
	}
	if final, ok := fsx.ParseAtomicTempName(name); ok {
		_, md5 := Classify(final)
		return KindAtomicTemp, md5
	}
	return KindUnknown, ""
}

func partialName(md5, token string) string { return "." + md5 + ".partial-" + token }
func corruptName(md5, token string) string { return "." + md5 + ".corrupt-" + token }
func lockName(md5 string) string           { return "." + md5 + ".lock" }
