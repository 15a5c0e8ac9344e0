package main

import (
	"fmt"
	"os"
)

// progress redraws one line on a terminal, or prints each new line
// otherwise.
type progress struct {
	tty  bool
	last string
}

func newProgress() *progress { return &progress{tty: isTerminal(os.Stderr)} }

func (p *progress) show(line string) {
	switch {
	case p.tty:
		fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
	case line != p.last:
		fmt.Fprintln(os.Stderr, line)
	}
	p.last = line
}

// done ends a redrawn line.
func (p *progress) done() {
	if p.tty && p.last != "" {
		fmt.Fprintln(os.Stderr)
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
