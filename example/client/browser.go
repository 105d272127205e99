package main

import (
	"os/exec"
	"runtime"
)

// openBrowser tries to open u in the system browser and reports whether a
// launcher was started. Failure is not an error: the URL has been printed.
// No shell is involved, so the URL's & and ? need no quoting.
func openBrowser(u string) bool {
	var name string
	var args []string
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler"}
	default: // linux, *bsd
		name = "xdg-open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return false
	}
	cmd := exec.Command(path, append(args, u)...) // stdin/stdout/stderr: the null device
	if err := cmd.Start(); err != nil {
		return false
	}
	go func() { _ = cmd.Wait() }() // reap it; its exit status doesn't matter
	return true
}
