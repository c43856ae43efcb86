//go:build !unix

package nixtest

// lockFile is a no-op where flock is unavailable (Nix does not run there anyway).
func lockFile(string) (unlock func()) { return func() {} }
