package web

import (
	"io"
	"log/slog"
	"strconv"
)

func slogNew(w *Warnings, out io.Writer) *slog.Logger {
	return slog.New(w.Handler(slog.NewTextHandler(out, nil)))
}

func itoa(i int) string { return strconv.Itoa(i) }
