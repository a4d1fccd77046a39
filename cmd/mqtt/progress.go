package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressStyle is how bench shows its progress.
type progressStyle int

const (
	progressOff   progressStyle = iota
	progressLine                // one line rewritten in place with \r, for terminals
	progressPlain               // a new line each time, for files and pipes
)

// progressMode resolves the --progress flag: "auto" picks progressLine when
// w is a terminal (a character device) and progressPlain otherwise.
func progressMode(flag string, w io.Writer) progressStyle {
	switch flag {
	case "off":
		return progressOff
	case "line":
		return progressLine
	case "plain":
		return progressPlain
	}
	if isTerminal(w) {
		return progressLine
	}
	return progressPlain
}

// isTerminal reports whether w is a file that is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress is a running progress display; stop ends it.
type progress struct {
	quit, done chan struct{}
}

// counter is what the progress display reads.
type counter interface {
	counts() (sent, received, wantSent, wantReceived int64)
}

// startProgress shows c's counts on w every interval until stop is called,
// in the given style.
func startProgress(style progressStyle, w io.Writer, interval time.Duration, c counter) *progress {
	p := &progress{quit: make(chan struct{}), done: make(chan struct{})}
	if style == progressOff {
		close(p.done)
		return p
	}
	go p.loop(style, w, interval, c)
	return p
}

// stop ends the display, after a last update, and waits for it.
func (p *progress) stop() {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
}

func (p *progress) loop(style progressStyle, w io.Writer, interval time.Duration, c counter) {
	defer close(p.done)
	start := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	width := 0
	show := func() {
		line := progressText(time.Since(start), c)
		if style == progressPlain {
			fmt.Fprintln(w, line)
			return
		}
		pad := max(width-len(line), 0)
		width = len(line)
		fmt.Fprintf(w, "\r%s%s", line, strings.Repeat(" ", pad))
	}
	for {
		select {
		case <-tick.C:
			show()
		case <-p.quit:
			show()
			if style == progressLine {
				fmt.Fprintln(w)
			}
			return
		}
	}
}

// progressText formats one progress update.
func progressText(elapsed time.Duration, c counter) string {
	sent, received, wantSent, wantReceived := c.counts()
	s := fmt.Sprintf("[%6.2fs] sent %d/%d (%3.0f%%)", elapsed.Seconds(), sent, wantSent, 100*float64(sent)/float64(wantSent))
	if wantReceived > 0 {
		s += fmt.Sprintf(", received %d/%d (%3.0f%%)", received, wantReceived, 100*float64(received)/float64(wantReceived))
	}
	if secs := elapsed.Seconds(); secs > 0 {
		s += fmt.Sprintf(", %.0f msg/s sent", float64(sent)/secs)
	}
	return s
}
