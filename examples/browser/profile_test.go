//go:build !js

package main

import (
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/profiler"
	"github.com/chromedp/chromedp"
)

// profileEnv, when set, makes the throughput measurement sample the page's
// CPU with the browser's profiler and log where the time went.
const profileEnv = "MQTT_BROWSER_PROFILE"

// startProfile starts the browser's profiler on the page when profileEnv is
// set; the returned function stops it and logs the time by kind of code.
func startProfile(t *testing.T, p *tab, what string) func() {
	t.Helper()
	if os.Getenv(profileEnv) == "" {
		return func() {}
	}
	if _, err := chromedp.Call(p.ctx, profiler.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(p.ctx, profiler.Start, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	return func() {
		res, err := chromedp.Call(p.ctx, profiler.Stop, cdp.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		logProfile(t, what, res.Profile)
	}
}

// logProfile logs the share of samples by kind of code: the Go program
// (WebAssembly), wasm_exec.js (the bridge between Go and JavaScript), the
// page's other JavaScript, the browser's built-in functions (such as
// WebSocket.send), garbage collection and idle time, and the heaviest
// functions.
func logProfile(t *testing.T, what string, prof *profiler.Profile) {
	t.Helper()
	kinds := map[string]int64{}
	funcs := map[string]int64{}
	var total int64
	for _, n := range prof.Nodes {
		if n.HitCount == 0 {
			continue
		}
		total += n.HitCount
		f := n.CallFrame
		var kind string
		switch {
		case strings.HasPrefix(f.FunctionName, "wasm-function["), strings.HasPrefix(f.URL, "wasm://"):
			kind = "Go (WebAssembly)"
		case strings.HasSuffix(f.URL, "wasm_exec.js"):
			kind = "wasm_exec.js"
		case f.FunctionName == "(idle)", f.FunctionName == "(program)", f.FunctionName == "(garbage collector)":
			kind = f.FunctionName
		case f.URL == "":
			kind = "browser built-ins"
		default:
			kind = "other JavaScript"
		}
		if !strings.HasPrefix(kind, "(") {
			funcs[kind+": "+f.FunctionName] += n.HitCount
		}
		kinds[kind] += n.HitCount
	}
	t.Logf("profile of the page, %s (%d samples):", what, total)
	for _, kv := range sorted(kinds) {
		t.Logf("  %5.1f%% %s", 100*float64(kv.n)/float64(total), kv.name)
	}
	for i, kv := range sorted(funcs) {
		if i == 8 {
			break
		}
		t.Logf("  %5.1f%%   %s", 100*float64(kv.n)/float64(total), kv.name)
	}
}

type named struct {
	name string
	n    int64
}

func sorted(m map[string]int64) []named {
	var out []named
	for k, v := range m {
		out = append(out, named{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n > out[j].n })
	return out
}
