//go:build !unix

package journal

// signalZero: without a probe, every owner is presumed alive (never delete).
func signalZero(int) bool { return true }
