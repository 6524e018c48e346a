package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/orecdn/ore/internal/testkit"
)

// A phone in the browser test: chromium headless, driven over the Chrome
// DevTools Protocol (its debugging port, on loopback), with a phone's
// screen (375 × 812 CSS pixels, a mobile viewport). The command line alone
// cannot say whether a page is wider than the screen; the page's own
// layout can.

// phoneWidth is the CSS width of the phone the test emulates (an iPhone's
// 375 px, the narrowest common phone screen but one).
const phoneWidth = 375

// devtools is one page of a chromium driven over its debugging port.
type devtools struct {
	t    *testing.T
	ws   *websocket.Conn
	next int
}

// openPhone starts chromium on about:blank with a phone's screen.
func openPhone(t *testing.T, bin string) *devtools {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-extensions", "--disable-background-networking", "--user-data-dir="+dir,
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank")
	var errb testkit.SyncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	// Chromium writes the port it took to DevToolsActivePort.
	var port string
	testkit.WaitFor(t, 60*time.Second, "chromium's debugging port", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "DevToolsActivePort"))
		if err != nil {
			return false
		}
		port, _, _ = strings.Cut(string(b), "\n")
		return port != ""
	})
	var targets []struct {
		Type string `json:"type"`
		WS   string `json:"webSocketDebuggerUrl"`
	}
	testkit.WaitFor(t, 30*time.Second, "chromium's page target", func() bool {
		resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		targets = nil
		if json.NewDecoder(resp.Body).Decode(&targets) != nil {
			return false
		}
		for _, tg := range targets {
			if tg.Type == "page" {
				return true
			}
		}
		return false
	})
	var url string
	for _, tg := range targets {
		if tg.Type == "page" {
			url = tg.WS
			break
		}
	}
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("connect to chromium's page: %v\n%s", err, errb.String())
	}
	t.Cleanup(func() { ws.Close() })
	d := &devtools{t: t, ws: ws}
	d.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": phoneWidth, "height": 812, "deviceScaleFactor": 2, "mobile": true}, nil)
	return d
}

// call sends one DevTools command and decodes its result into out (nil:
// discarded); events that arrive meanwhile are skipped.
func (d *devtools) call(method string, params, out any) {
	d.t.Helper()
	d.next++
	id := d.next
	_ = d.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := d.ws.WriteJSON(map[string]any{"id": id, "method": method, "params": params}); err != nil {
		d.t.Fatalf("devtools %s: %v", method, err)
	}
	for {
		_ = d.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := d.ws.ReadJSON(&msg); err != nil {
			d.t.Fatalf("devtools %s: %v", method, err)
		}
		if msg.ID != id {
			continue
		}
		if msg.Error != nil {
			d.t.Fatalf("devtools %s: %s", method, msg.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(msg.Result, out); err != nil {
				d.t.Fatalf("devtools %s: %v", method, err)
			}
		}
		return
	}
}

// eval evaluates a JavaScript expression in the page and decodes its
// value (JSON) into out.
func (d *devtools) eval(expr string, out any) {
	d.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	d.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	if res.Exception != nil {
		d.t.Fatalf("evaluate %q: %s", expr, res.Exception.Text)
	}
	if err := json.Unmarshal(res.Result.Value, out); err != nil {
		d.t.Fatalf("evaluate %q: %v (%s)", expr, err, res.Result.Value)
	}
}

// load opens url and waits until the element with id ready is on the
// page.
func (d *devtools) load(url, ready string) {
	d.t.Helper()
	d.call("Page.navigate", map[string]any{"url": url}, nil)
	testkit.WaitFor(d.t, 60*time.Second, "the page at "+url+" with #"+ready, func() bool {
		var ok bool
		d.eval(fmt.Sprintf("document.readyState === 'complete' && document.getElementById(%q) !== null", ready), &ok)
		return ok
	})
}

// phoneLayout is how a page lays out on the phone: the viewport's width
// (a mobile browser widens it, zooming out, to fit a page wider than the
// screen), the document's, and the elements that reach past the screen's
// right edge (outside tables, which scroll within themselves).
type phoneLayout struct {
	Viewport int      `json:"viewport"`
	Document int      `json:"document"`
	Wide     []string `json:"wide"`
}

var layoutJS = `(() => {
  const w = ` + fmt.Sprint(phoneWidth) + `;
  const wide = [];
  for (const e of document.body.querySelectorAll('*')) {
    if (e.closest('table')) continue;
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > w + 1) wide.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className : '') + ' ' + Math.round(r.right) + 'px');
  }
  return {viewport: window.innerWidth, document: document.documentElement.scrollWidth, wide: wide.slice(0, 8)};
})()`

// checkPhone fails the test when the page is wider than the phone, and
// saves what the phone shows as a PNG.
func (d *devtools) checkPhone(tab, shot string) {
	d.t.Helper()
	var l phoneLayout
	d.eval(layoutJS, &l)
	if l.Viewport < phoneWidth {
		d.t.Fatalf("%s: the phone's viewport is %d px wide, want %d (the emulation did not take)", tab, l.Viewport, phoneWidth)
	}
	if l.Viewport > phoneWidth || l.Document > phoneWidth || len(l.Wide) > 0 {
		d.t.Errorf("%s: wider than a %d px phone: the page is %d px wide (viewport %d); past the screen's edge: %v", tab, phoneWidth, l.Document, l.Viewport, l.Wide)
	}
	if shot == "" {
		return
	}
	var png struct {
		Data string `json:"data"`
	}
	d.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &png)
	b, err := base64.StdEncoding.DecodeString(png.Data)
	if err != nil || len(b) < 1000 {
		d.t.Fatalf("%s: phone screenshot: %v (%d bytes)", tab, err, len(b))
	}
	if err := os.WriteFile(shot, b, 0o644); err != nil {
		d.t.Fatal(err)
	}
}
