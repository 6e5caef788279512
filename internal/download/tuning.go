package download

import (
	"runtime"
	"time"

	"github.com/modelcache/modelcache/config"
)

// Tuning holds the engine's sizes, counts and timers. DefaultTuning derives
// it from the configuration; zero fields passed to WithTuning keep defaults.
type Tuning struct {
	// FilesInParallel bounds files of one batch downloaded at once (8, as the reference).
	FilesInParallel int
	// StreamsPerFile bounds concurrent ranges of one file (8).
	StreamsPerFile int
	// GlobalStreams bounds concurrent response bodies of the whole engine (32).
	GlobalStreams int
	// RangeThreshold: files smaller than this use one stream (32 MiB).
	RangeThreshold int64
	// Part size = clamp(ceil(size/PartCount), MinPart, MaxPart) (download.md
	// §2.3). Both are tuned to 8 MiB (spec: 16 MiB and 1 GiB), so parts are
	// 8 MiB: the MD5 follows the contiguous completed prefix from buffers
	// kept in memory until hashed, and the hash lead (1.5 parts per stream)
	// bounds that memory: 8 MiB parts peak at ~125 MB RSS for a 2 GiB pull,
	// 16 MiB at ~220 MB, at the same speed; see docs/performance.md.
	PartCount int
	MinPart   int64
	MaxPart   int64
	// MinSplit: work stealing splits an in-flight remainder of at least this (32 MiB).
	MinSplit int64
	// BufferSize of each stream's read buffer (one pwrite per buffer).
	BufferSize int

	// StallTimeout: no byte on a stream for this long restarts it (30 s, or
	// CHUNK_DOWNLOAD_READ_TIMEOUT when set).
	StallTimeout time.Duration
	// MaxStalls per file before a StallError (20).
	MaxStalls int
	// SlowAfter: streams younger than this are never judged slow (5 s).
	SlowAfter time.Duration
	// SlowFraction of the median throughput below which a stream is slow (0.1).
	SlowFraction float64

	// MaxAttempts per part without progress (CHUNK_DOWNLOAD_MAX_ATTEMPTS).
	MaxAttempts int
	// MaxStatusTries: consecutive retryable statuses without progress (API_CALLS_MAX_TRIES).
	MaxStatusTries int
	// RetryCodes are the retryable HTTP statuses.
	RetryCodes []int
	// BackoffUnit scales the backoff 2^min(n,5) × unit × [0.5, 1.5) (1 s).
	BackoffUnit time.Duration
	// MaxRetryAfter caps an honoured Retry-After (60 s).
	MaxRetryAfter time.Duration
	// HeadTimeout bounds each size probe (API_CALLS_TIMEOUT).
	HeadTimeout time.Duration
	// RetryDeadline: a file that has gone this long without receiving a
	// byte while its requests fail transiently (errors, retryable statuses,
	// stalls) fails with a RetryError, whatever its attempt counts say
	// (MODELCACHE_DOWNLOAD_RETRY_DEADLINE; <= 0: none).
	RetryDeadline time.Duration
	// MaxUnknownSize caps a download whose size nobody announced
	// (MODELCACHE_DOWNLOAD_MAX_UNKNOWN_SIZE).
	MaxUnknownSize int64
	// DiskReservePercent: the free-space check asks for the missing bytes
	// plus this percentage of them plus 1 MiB (MODELCACHE_DISK_RESERVE_PERCENT).
	DiskReservePercent float64

	// JournalMinSize: smaller files get no resume journal (4 MiB).
	JournalMinSize int64
	// JournalEvery: a checkpoint is due once the file's streams have
	// written this many bytes per stream since the last one (4 MiB), and a
	// stream waits while twice that is written but not yet journaled: a
	// kill loses at most that much per stream, whatever the timing.
	JournalEvery int64
	// JournalInterval between periodic journal checkpoints (2 s); parts are
	// also checkpointed when they complete.
	JournalInterval time.Duration
	// HeartbeatInterval: the journal is rewritten at least this often while
	// the owner lives (5 s).
	HeartbeatInterval time.Duration

	// LockTimeout: give up waiting for another process's download after this
	// long without progress (INFERENCE_MODELS_FILE_LOCK_ACQUIRE_TIMEOUT).
	LockTimeout time.Duration
	// LockPoll between lock attempts (50 ms).
	LockPoll time.Duration
	// WaitLogInterval between "still waiting" lines (10 s).
	WaitLogInterval time.Duration

	// ProgressInterval between periodic progress events (250 ms).
	ProgressInterval time.Duration
	// HashLead: streams ahead of the watermark write at most this far
	// beyond the hash followers' position (at least 1.5 parts per stream;
	// 64 MiB; 0 disables the backpressure). It also bounds the written
	// buffers kept in memory for the followers.
	HashLead int64
	// SHA256 also computes the SHA-256 of every blob (stored in
	// .meta/verified/<md5>) in a second hashing goroutine.
	SHA256 bool
	// CheckFreeSpace runs the statfs check before each download.
	CheckFreeSpace bool
	// EarlyWriteback starts the disk write of every completed part at once
	// (sync_file_range). Off by default: the journal checkpoints already
	// push data out while downloading, and on a CPU-bound machine extra
	// concurrent writeback competes with the MD5 (measurements in
	// docs/performance.md were inconclusive within the VM's noise).
	EarlyWriteback bool
	// DirectIO writes the aligned blocks of files of at least DirectMin
	// bytes with O_DIRECT (Linux; silently off where the filesystem refuses
	// it): no copy into the page cache, no dirty-page writeback storm at the
	// final fsync, and hashing from the network buffers. The cost: the
	// first reader of the blob reads it from disk, not from memory. Default:
	// MODELCACHE_DIRECT_IO (true).
	DirectIO  bool
	DirectMin int64
	// HedgeAfter: when a file has nothing left to start or split, a part
	// whose stream has run this long at under half the reference rate,
	// and would need longer than this to finish, gets a second request for
	// its rest; the first to finish wins (2 s; 0 disables).
	HedgeAfter time.Duration
}

// DefaultTuning returns the defaults for cfg (download.md §1.6, §2).
func DefaultTuning(cfg config.Config) Tuning {
	t := Tuning{
		FilesInParallel:    8,
		StreamsPerFile:     8,
		GlobalStreams:      32,
		RangeThreshold:     32 << 20,
		PartCount:          16,
		MinPart:            8 << 20,
		MaxPart:            8 << 20,
		MinSplit:           32 << 20,
		BufferSize:         1 << 20,
		StallTimeout:       30 * time.Second,
		MaxStalls:          20,
		SlowAfter:          5 * time.Second,
		SlowFraction:       0.1,
		MaxAttempts:        cfg.ChunkMaxAttempts,
		MaxStatusTries:     cfg.APIMaxTries,
		RetryCodes:         append([]int(nil), cfg.RetryCodes...),
		BackoffUnit:        time.Second,
		MaxRetryAfter:      60 * time.Second,
		HeadTimeout:        cfg.APITimeout,
		RetryDeadline:      cfg.RetryDeadline,
		MaxUnknownSize:     cfg.MaxUnknownSize,
		DiskReservePercent: cfg.DiskReservePercent,
		JournalMinSize:     4 << 20,
		JournalEvery:       4 << 20,
		JournalInterval:    2 * time.Second,
		HeartbeatInterval:  5 * time.Second,
		LockTimeout:        cfg.LockTimeout,
		LockPoll:           50 * time.Millisecond,
		WaitLogInterval:    10 * time.Second,
		ProgressInterval:   250 * time.Millisecond,
		HashLead:           64 << 20,
		SHA256:             runtime.NumCPU() >= 4,
		CheckFreeSpace:     true,
		EarlyWriteback:     false,
		DirectIO:           cfg.DirectIO,
		DirectMin:          64 << 20,
		HedgeAfter:         2 * time.Second,
	}
	if cfg.ChunkReadTimeoutSet && cfg.ChunkReadTimeout > 0 {
		t.StallTimeout = cfg.ChunkReadTimeout
	}
	return t.withDefaults()
}

// withDefaults repairs unusable values (a zero or negative count would
// deadlock or spin).
func (t Tuning) withDefaults() Tuning {
	pos := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	pos64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	posD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	pos(&t.FilesInParallel, 8)
	pos(&t.StreamsPerFile, 8)
	pos(&t.GlobalStreams, 32)
	pos64(&t.RangeThreshold, 32<<20)
	pos(&t.PartCount, 16)
	pos64(&t.MinPart, 8<<20)
	pos64(&t.MaxPart, 8<<20)
	if t.MaxPart < t.MinPart {
		t.MaxPart = t.MinPart
	}
	pos64(&t.MinSplit, 32<<20)
	pos(&t.BufferSize, 1<<20)
	posD(&t.StallTimeout, 30*time.Second)
	pos(&t.MaxStalls, 20)
	posD(&t.SlowAfter, 5*time.Second)
	if t.SlowFraction <= 0 || t.SlowFraction >= 1 {
		t.SlowFraction = 0.1
	}
	pos(&t.MaxAttempts, 60)
	pos(&t.MaxStatusTries, 3)
	if t.RetryCodes == nil {
		t.RetryCodes = []int{408, 429, 502, 503, 504}
	}
	posD(&t.BackoffUnit, time.Second)
	posD(&t.MaxRetryAfter, 60*time.Second)
	posD(&t.HeadTimeout, 5*time.Second)
	pos64(&t.MaxUnknownSize, 32<<30)
	if t.DiskReservePercent < 0 || t.DiskReservePercent > 100 {
		t.DiskReservePercent = 1
	}
	pos64(&t.JournalMinSize, 4<<20)
	pos64(&t.JournalEvery, 4<<20)
	posD(&t.JournalInterval, 2*time.Second)
	posD(&t.HeartbeatInterval, 5*time.Second)
	posD(&t.LockPoll, 50*time.Millisecond)
	posD(&t.WaitLogInterval, 10*time.Second)
	posD(&t.ProgressInterval, 250*time.Millisecond)
	return t
}

// partSize implements the part sizing rule for a file of size bytes.
func (t Tuning) partSize(size int64) int64 {
	p := (size + int64(t.PartCount) - 1) / int64(t.PartCount)
	return max(t.MinPart, min(p, t.MaxPart))
}

func (t Tuning) retryable(code int) bool {
	for _, c := range t.RetryCodes {
		if c == code {
			return true
		}
	}
	return false
}
