//go:build !unix

package sqlite_test

import (
	"testing"
	"time"
)

// processCPU is zero where getrusage is not available: cpu-µs/op reads 0.
func processCPU(*testing.B) time.Duration { return 0 }
