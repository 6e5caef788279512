package maintain

import (
	"time"

	"github.com/modelcache/modelcache/internal/journal"
)

// partialAbandoned applies download.md §3 rule 7 through the journal
// package, which owns the journal format and owner liveness for the
// download engine too: a partial goes only when its owner is dead (a
// zombie counts as dead) and its heartbeat (journal-less: its mtime) is
// older than grace.
func partialAbandoned(journalData []byte, mtime, now time.Time, grace time.Duration) bool {
	return journal.Abandoned(journalData, mtime, now, grace)
}
