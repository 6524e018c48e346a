//go:build !(darwin || linux || openbsd)

package store

import "os"

// writeRecord writes a record's head (header and key) and data at off in
// one write, built in *scratch (kept for the next record, up to
// maxScratch).
func writeRecord(f *os.File, off int64, head, data []byte, scratch *[]byte) error {
	size := len(head) + len(data)
	var rec []byte
	switch {
	case size > maxScratch:
		rec = make([]byte, size)
	case cap(*scratch) < size:
		*scratch = make([]byte, size)
		fallthrough
	default:
		rec = (*scratch)[:size]
	}
	copy(rec, head)
	copy(rec[len(head):], data)
	_, err := f.WriteAt(rec, off)
	return err
}
