// Package savedseq keeps one sequence number in a file for the examples:
// the producer's last producer_seq, the viewer's cursor.
package savedseq

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Load reads the number saved at path; 0 when there is none yet.
func Load(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// Save replaces the number at path at once (write, then rename), so a
// process killed mid-write still finds the previous one.
func Save(path string, n uint64) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(n, 10)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
