package web

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// maxWarnings bounds the warnings kept for the dashboard: the most recent
// ones, oldest out.
const maxWarnings = 64

// Warning is one log record at warn level or above.
type Warning struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	Attrs   string    `json:"attrs,omitempty"` // key=value pairs, as the log prints them
}

// Warnings is a bounded ring of the daemon's recent warnings and errors,
// fed by a slog.Handler that wraps the daemon's own (Handler).
type Warnings struct {
	mu   sync.Mutex
	ring []Warning
	next int
	full bool
}

// NewWarnings makes an empty ring.
func NewWarnings() *Warnings { return &Warnings{ring: make([]Warning, maxWarnings)} }

func (w *Warnings) add(x Warning) {
	w.mu.Lock()
	w.ring[w.next] = x
	w.next = (w.next + 1) % len(w.ring)
	if w.next == 0 {
		w.full = true
	}
	w.mu.Unlock()
}

// Recent returns the kept warnings, newest first.
func (w *Warnings) Recent() []Warning {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.next
	if w.full {
		n = len(w.ring)
	}
	out := make([]Warning, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, w.ring[(w.next-i+len(w.ring))%len(w.ring)])
	}
	return out
}

// Handler wraps h: every record still goes to h, and the ones at warn
// level or above are also kept in the ring.
func (w *Warnings) Handler(h slog.Handler) slog.Handler { return &warnHandler{next: h, w: w} }

type warnHandler struct {
	next   slog.Handler
	w      *Warnings
	prefix string // attributes and groups given by With*, printed
}

func (h *warnHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *warnHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(h.prefix)
		r.Attrs(func(a slog.Attr) bool {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s=%v", a.Key, a.Value.Resolve())
			return b.Len() < 1024
		})
		h.w.add(Warning{Time: r.Time, Level: r.Level.String(), Message: r.Message, Attrs: truncate(b.String(), 1024)})
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *warnHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range as {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", a.Key, a.Value.Resolve())
	}
	return &warnHandler{next: h.next.WithAttrs(as), w: h.w, prefix: truncate(b.String(), 512)}
}

func (h *warnHandler) WithGroup(name string) slog.Handler {
	return &warnHandler{next: h.next.WithGroup(name), w: h.w, prefix: h.prefix}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
