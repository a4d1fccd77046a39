package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

// result is what one run of one client reports; the fields a workload does
// not measure stay zero. A child process prints it as one JSON line after
// resultPrefix.
type result struct {
	Rate      float64 `json:"rate,omitempty"`            // messages (or connections) per second
	Count     int     `json:"count,omitempty"`           // messages received or connections made
	Secs      float64 `json:"secs,omitempty"`            // measured time
	P50       float64 `json:"p50,omitempty"`             // latency percentiles, microseconds
	P99       float64 `json:"p99,omitempty"`             //
	P999      float64 `json:"p999,omitempty"`            //
	Allocs    float64 `json:"allocs,omitempty"`          // heap allocations per message, whole process
	ConnBytes float64 `json:"conn_bytes,omitempty"`      // Go heap + stacks per connection
	ConnStack float64 `json:"conn_stack,omitempty"`      // of which goroutine stacks
	ConnGs    float64 `json:"conn_goroutines,omitempty"` // goroutines per connection
	PeakMiB   float64 `json:"peak_mib,omitempty"`        // Go heap + stacks with all connections open
	BrokerMiB float64 `json:"broker_mib,omitempty"`      // broker RSS with all connections open
	BrokerCPU float64 `json:"broker_cpu,omitempty"`      // broker CPU time per message, microseconds
}

const resultPrefix = "RESULT "

func writeResult(w io.Writer, r result) {
	b, _ := json.Marshal(r)
	fmt.Fprintf(w, "%s%s\n", resultPrefix, b)
}

func parseResult(out string) (result, error) {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, resultPrefix); ok {
			var r result
			err := json.Unmarshal([]byte(rest), &r)
			return r, err
		}
	}
	return result{}, fmt.Errorf("no result line in %q", out)
}

// allocMeter counts heap allocations of the whole process between start
// and perMsg.
type allocMeter struct{ before uint64 }

func (a *allocMeter) start() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	a.before = ms.Mallocs
}

func (a *allocMeter) perMsg(n int) float64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.Mallocs-a.before) / float64(n)
}

// goMemory returns the live Go heap plus goroutine stacks after a full
// collection, and the stacks alone.
func goMemory() (total, stacks uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse, ms.StackInuse
}

// percentiles fills the latency fields of r from samples (sorted in place).
func percentiles(r *result, samples []time.Duration) {
	slices.Sort(samples)
	at := func(q float64) float64 {
		i := int(q * float64(len(samples)-1))
		return float64(samples[i]) / float64(time.Microsecond)
	}
	r.P50, r.P99, r.P999 = at(0.50), at(0.99), at(0.999)
}

// processRSS returns the resident set size of process pid in MiB, or 0.
func processRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// processCPU returns the user plus system CPU time pid has used (all its
// threads), or 0 when it cannot be read.
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, in clock ticks (100 a second
	// on Linux).
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	var ticks int64
	for _, f := range fields[11:13] {
		v, _ := strconv.ParseInt(f, 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// brokerCPUMeter measures the broker's CPU time per message over a section.
type brokerCPUMeter struct {
	pid    int
	before time.Duration
}

func startBrokerCPU(pid int) brokerCPUMeter {
	return brokerCPUMeter{pid: pid, before: processCPU(pid)}
}

// perMsg returns microseconds of broker CPU per message since start, 0
// for the in-process sink (processCPU reads 0 for pid 0).
func (m brokerCPUMeter) perMsg(n int) float64 {
	return float64(processCPU(m.pid)-m.before) / float64(time.Microsecond) / float64(n)
}

// writeHeapProfile writes the current heap profile to path; an empty path
// writes nothing.
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	return writeProfile("heap", path)
}

// writeProfile writes the named runtime profile to path.
func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
