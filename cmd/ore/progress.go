package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/term"
)

// progress draws a bar on a terminal and prints plain lines otherwise (logs,
// CI, pipes): one every few seconds, and one at the end.
type progress struct {
	w     io.Writer
	tty   bool
	label string
	start time.Time
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer, label string) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &progress{w: w, tty: tty, label: label, start: time.Now()}
}

const plainEvery = 2 * time.Second

// update shows done of total bytes (total 0: unknown yet); extra is appended.
func (p *progress) update(done, total int64, extra string) {
	now := time.Now()
	if p.tty && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	if !p.tty && now.Sub(p.last) < plainEvery {
		return
	}
	p.last = now
	p.draw(done, total, extra)
}

func (p *progress) draw(done, total int64, extra string) {
	el := time.Since(p.start).Seconds()
	rate := ""
	if el > 0 {
		rate = humanize.Bytes(uint64(float64(done)/el)) + "/s"
	}
	line := fmt.Sprintf("%s %s", p.label, humanize.IBytes(uint64(done)))
	if total > 0 {
		pct := float64(done) / float64(total) * 100
		if pct > 100 {
			pct = 100
		}
		if p.tty {
			const width = 30
			fill := int(pct / 100 * width)
			line = fmt.Sprintf("%s [%s%s] %5.1f%% %s / %s", p.label, strings.Repeat("#", fill), strings.Repeat(" ", width-fill),
				pct, humanize.IBytes(uint64(done)), humanize.IBytes(uint64(total)))
		} else {
			line = fmt.Sprintf("%s %s / %s (%.0f%%)", p.label, humanize.IBytes(uint64(done)), humanize.IBytes(uint64(total)), pct)
		}
	}
	line += "  " + rate
	if extra != "" {
		line += "  " + extra
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// done draws the final state and ends the line.
func (p *progress) done(done, total int64, extra string) {
	p.draw(done, total, extra)
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}
