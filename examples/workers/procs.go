package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

const (
	// maxProcs bounds -procs.
	maxProcs = 64
	// processReady is the line a worker process prints once all its
	// workers are subscribed.
	processReady = "worker process ready"
	// killAfter bounds how long the worker processes may take to stop once
	// told to; then they are killed.
	killAfter = 2*shutdownTimeout + 5*time.Second
)

// workerProcess is one process of a -procs pool, as the parent sees it.
type workerProcess struct {
	n      int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.Reader
	// summary is the process's closing "processed …" line and processed
	// the count in it; summarized says whether it came.
	summary    string
	processed  int
	summarized bool
}

// procLine is a line a worker process printed, or (eof) the end of its
// output.
type procLine struct {
	proc int
	text string
	eof  bool
}

// runProcesses runs the pool as n worker processes of this program, each
// started with args and its number (-process). It forwards their lines to
// out, prints ready once all are subscribed, and stops them once count
// messages were processed in all (0: never) or ctx ends, by closing their
// standard input: each worker process then disconnects its clients
// gracefully and prints its summary. It returns when all have exited.
func runProcesses(ctx context.Context, n int, args []string, count int, ready string, out *lineWriter) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot re-execute this program: %w", err)
	}
	lines := make(chan procLine, 64)
	var readers sync.WaitGroup
	procs := make([]*workerProcess, 0, n)
	var stopOnce sync.Once
	var killer *time.Timer
	stop := func() {
		stopOnce.Do(func() {
			for _, p := range procs {
				p.stdin.Close()
			}
			killer = time.AfterFunc(killAfter, func() {
				for _, p := range procs {
					_ = p.cmd.Process.Kill()
				}
			})
		})
	}
	var startErr error
	for i := range n {
		p, err := startProcess(exe, i, append(args, "-process", fmt.Sprint(i), "-ready", processReady))
		if err != nil {
			startErr = err
			break
		}
		procs = append(procs, p)
		readers.Go(func() { forwardLines(p, lines) })
	}
	go func() {
		readers.Wait()
		close(lines)
	}()
	if startErr != nil {
		stop()
	}

	var failures []error
	readyCount, total := 0, 0
	ctxDone := ctx.Done()
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			p := procs[l.proc]
			switch {
			case l.eof:
				if !p.summarized {
					failures = append(failures, fmt.Errorf("worker process %d ended without its summary", p.n))
					stop() // one is gone: the pool stops, and says why
				}
			case l.text == processReady:
				if readyCount++; readyCount == len(procs) && ready != "" {
					out.printf("%s\n", ready)
				}
			case strings.HasPrefix(l.text, "processed "):
				p.summary, p.summarized = l.text, true
				if _, err := fmt.Sscanf(l.text, "processed %d messages", &p.processed); err != nil {
					failures = append(failures, fmt.Errorf("worker process %d: summary %q: %w", p.n, l.text, err))
				}
				out.printf("process %d: %s\n", p.n, l.text)
			default:
				out.printf("%s\n", l.text)
				if total++; count > 0 && total >= count {
					stop()
				}
			}
		case <-ctxDone:
			ctxDone = nil
			stop()
		}
	}
	stop()
	for _, p := range procs {
		if err := p.cmd.Wait(); err != nil {
			failures = append(failures, fmt.Errorf("worker process %d: %w", p.n, err))
		}
	}
	killer.Stop()
	if err := errors.Join(append([]error{startErr}, failures...)...); err != nil {
		return err
	}

	summary := make([]string, len(procs))
	sum := 0
	for i, p := range procs {
		summary[i] = fmt.Sprintf("process %d: %d", p.n, p.processed)
		sum += p.processed
	}
	out.printf("processed %d messages (%s)\n", sum, strings.Join(summary, ", "))
	return nil
}

// startProcess starts worker process n of this program with args. Its
// standard error is this process's.
func startProcess(exe string, n int, args []string) (*workerProcess, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("worker process %d: %w", n, err)
	}
	return &workerProcess{n: n, cmd: cmd, stdin: stdin, stdout: stdout}, nil
}

// forwardLines sends every line p prints to lines, then an end marker.
func forwardLines(p *workerProcess, lines chan<- procLine) {
	sc := bufio.NewScanner(p.stdout)
	for sc.Scan() {
		lines <- procLine{proc: p.n, text: sc.Text()}
	}
	lines <- procLine{proc: p.n, eof: true}
}
