package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/audits"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/pixieauth/pixie/handlers"
)

// The browser tests run pixie's pages in a real headless Chromium, driven
// over the DevTools protocol by chromedp: the HTML, the forms, the cookies,
// the redirects and the security headers as a user's browser meets them.
// They run only when PIXIE_TEST_BROWSER is set (CI sets it); see
// chromeExecPath.

const (
	// chromeEnv turns the browser tests on: "1" finds Chromium on PATH,
	// anything else names the binary.
	chromeEnv = "PIXIE_TEST_BROWSER"
	// chromeScreenshotsEnv=1 makes the tests write docs/login.png and
	// docs/consent.png for the README.
	chromeScreenshotsEnv = "PIXIE_UPDATE_SCREENSHOTS"

	// chromeWidth x chromeHeight is the phone-sized viewport of every tab.
	chromeWidth, chromeHeight = 420, 900
	// chromeTabTimeout bounds each subtest's work in the browser.
	chromeTabTimeout = 60 * time.Second
	// chromeClickTimeout bounds a click's navigation: a click that
	// navigates nowhere fails after it, not after chromeTabTimeout.
	chromeClickTimeout = 20 * time.Second
)

// TestBrowser runs the authorization code flow through pixie's pages in
// headless Chromium: one browser for the whole test, one tab with its own
// cookie jar (a fresh browser context) and a fresh pixie server per
// subtest. Every subtest saves a full-page screenshot of each page it
// visits in its t.ArtifactDir (keep them with go test -artifacts).
func TestBrowser(t *testing.T) {
	chrome := startChrome(t)

	// 1. The whole flow for a client that is not first party: login page,
	// consent page, Allow, the code at the app's loopback listener, tokens.
	t.Run("login_consent_allow", func(t *testing.T) {
		t.Parallel()
		f := newChromeFlow(t, otherClient)
		tab := chrome.newTab(t)

		tab.navigate(f.ar.URL, http.StatusOK)
		tab.wantLoginPage(f.ts, "Other App")
		login := tab.screenshot("login")

		resp := tab.logIn(aliceUsername, alicePassword)
		tab.wantConsentPage(f.ts, resp, "Other App")
		consent := tab.screenshot("consent")

		resp = tab.submit(`button[name=decision][value=allow]`)
		code := f.wantCode(tab, resp)
		tab.screenshot("callback")
		f.redeem(code)

		if os.Getenv(chromeScreenshotsEnv) == "1" {
			chromeWriteDocs(t, map[string][]byte{"login.png": login, "consent.png": consent})
		}
	})

	// 2. A first-party client skips the consent page: login, then straight
	// to the app.
	t.Run("first_party_no_consent", func(t *testing.T) {
		t.Parallel()
		f := newChromeFlow(t, nativeClient)
		tab := chrome.newTab(t)

		tab.navigate(f.ar.URL, http.StatusOK)
		tab.wantLoginPage(f.ts, "Example App")
		tab.screenshot("login")

		resp := tab.logIn(aliceUsername, alicePassword)
		code := f.wantCode(tab, resp)
		tab.screenshot("callback")
		for _, u := range tab.documents() {
			if strings.HasPrefix(u, f.ts.URL+handlers.PathConsent) {
				t.Errorf("the browser loaded %s; a first-party client must not get a consent page", u)
			}
		}
		f.redeem(code)
	})

	// 3. A wrong password: the login page again with the message, and
	// nothing for the app.
	t.Run("wrong_password", func(t *testing.T) {
		t.Parallel()
		f := newChromeFlow(t, otherClient)
		tab := chrome.newTab(t)

		tab.navigate(f.ar.URL, http.StatusOK)
		tab.wantLoginPage(f.ts, "Other App")
		tab.screenshot("login")

		resp := tab.logIn(aliceUsername, "not "+alicePassword)
		tab.screenshot("login-error")
		if resp.Status != http.StatusOK {
			t.Errorf("got status %d for the failed login, want 200 (the form again)", resp.Status)
		}
		tab.wantLoginPage(f.ts, "Other App")
		if got, want := tab.text(`[role=alert]`), "The username or password is incorrect."; got != want {
			t.Errorf("got alert %q, want %q", got, want)
		}
		if got := tab.value(`#username`); got != aliceUsername {
			t.Errorf("got username %q after the failed login, want it kept: %q", got, aliceUsername)
		}
		if got := tab.value(`#password`); got != "" {
			t.Errorf("got a password %q in the form after the failed login, want it empty", got)
		}
		f.wantNoCallback()
	})

	// 4. A form without its CSRF token, or with a wrong one, is refused
	// with the 403 error page, even with the right password.
	t.Run("csrf", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name string
			// tamper changes the login form in tab before it is submitted;
			// other is a second tab, with its own session, for taking its
			// token.
			tamper func(t *testing.T, tab, other *chromeTab, f *chromeFlow)
		}{
			{
				name: "removed",
				tamper: func(t *testing.T, tab, _ *chromeTab, _ *chromeFlow) {
					chromeRun(t, tab.ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('input[name=csrf_token]').remove()`))
					if n := chromeEval[int](tab, `document.querySelectorAll('input[name=csrf_token]').length`); n != 0 {
						t.Fatalf("%d csrf_token inputs left, want none", n)
					}
				},
			},
			{
				name: "forged",
				tamper: func(t *testing.T, tab, _ *chromeTab, _ *chromeFlow) {
					tab.setValue(`input[name=csrf_token]`, strings.Repeat("A", 43))
				},
			},
			{
				// A real token, of another browser's session: the token
				// is bound to the session cookie, not merely well formed.
				name: "another_session",
				tamper: func(t *testing.T, tab, other *chromeTab, f *chromeFlow) {
					other.navigate(f.ar.URL, http.StatusOK)
					theirs := other.value(`input[name=csrf_token]`)
					if theirs == "" || theirs == tab.value(`input[name=csrf_token]`) {
						t.Fatalf("the other session's token %q is empty or the same as this one's", theirs)
					}
					tab.setValue(`input[name=csrf_token]`, theirs)
				},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newChromeFlow(t, otherClient)
				tab, other := chrome.newTab(t), chrome.newTab(t)

				tab.navigate(f.ar.URL, http.StatusOK)
				tab.wantLoginPage(f.ts, "Other App")
				tab.screenshot("login")
				tt.tamper(t, tab, other, f)

				resp := tab.logIn(aliceUsername, alicePassword)
				tab.screenshot("refused")
				if resp.Status != http.StatusForbidden {
					t.Fatalf("got status %d at %s, want 403", resp.Status, resp.URL)
				}
				tab.wantErrorPage(f.ts, "invalid_request", "The form expired or did not come from this site.")
				f.wantNoCallback()

				// Not logged in: the same request asks for a login again.
				tab.navigate(f.ar.URL, http.StatusOK)
				tab.wantLoginPage(f.ts, "Other App")
				tab.screenshot("login-again")
				f.wantNoCallback()
			})
		}
	})

	// 5. Another site may not show pixie's pages in a frame (clickjacking).
	t.Run("framing_refused", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, serverOptions{})
		ar := newAuthRequest(ts.oauth2Config(otherClient, ts.loopbackRedirect(), allScopes))
		_, authQuery, _ := strings.Cut(ar.URL, "?")

		// The control: pixie behind a proxy that drops the two anti-framing
		// headers. Its pages must render in the frame, or the checks below
		// could not tell a refused frame from a check that sees nothing.
		issuer, err := url.Parse(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		proxy := httputil.NewSingleHostReverseProxy(issuer)
		proxy.ModifyResponse = func(r *http.Response) error {
			r.Header.Del("Content-Security-Policy")
			r.Header.Del("X-Frame-Options")
			return nil
		}
		bare := httptest.NewServer(proxy)
		t.Cleanup(bare.Close)
		// The attacker's page, on another origin, framing ?src.
		framer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = chromeFramerPage.Execute(w, r.URL.Query().Get("src"))
		}))
		t.Cleanup(framer.Close)

		tests := []struct {
			name string
			path string // the page to frame, on the issuer
			// wantUsername: the page is the login form.
			wantUsername bool
		}{
			{"login", handlers.PathLogin + "?" + authQuery, true},
			{"authorize_redirects_to_login", handlers.PathAuthorize + "?" + authQuery, true},
			{"error_page", handlers.PathAuthorize + "?client_id=nobody&response_type=code", false},
			{"logout_page", handlers.PathLogout, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				tab := chrome.newTab(t)

				ctl := tab.frame(framer.URL, bare.URL+tt.path)
				tab.screenshot("control")
				if !strings.HasPrefix(ctl.URL, bare.URL) || !ctl.HasMain || ctl.HasUsername != tt.wantUsername || len(ctl.CSP) != 0 {
					t.Fatalf("control: the page without the headers did not render in the frame: %+v", ctl)
				}

				got := tab.frame(framer.URL, ts.URL+tt.path)
				tab.screenshot("framed")
				if !strings.HasPrefix(got.Top, framer.URL) {
					t.Errorf("the top page is %s, want the framing page still", got.Top)
				}
				// The browser did fetch the page, with both headers...
				if got.Response == nil {
					t.Fatalf("saw no response for the frame's document (frame %+v)", got)
				}
				if csp := chromeHeader(got.Response.Headers, "Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
					t.Errorf("got Content-Security-Policy %q, want frame-ancestors 'none'", csp)
				}
				if xfo := chromeHeader(got.Response.Headers, "X-Frame-Options"); !strings.EqualFold(xfo, "DENY") {
					t.Errorf("got X-Frame-Options %q, want DENY", xfo)
				}
				// ...and refused to show it: the frame holds Chrome's error
				// page instead, and none of pixie's page is in the DOM.
				if !strings.HasPrefix(got.URL, "chrome-error://") || !strings.HasPrefix(got.Unreachable, ts.URL) {
					t.Errorf("got frame URL %q (unreachable %q), want chrome-error:// for %s", got.URL, got.Unreachable, ts.URL)
				}
				// Chrome says why: frame-ancestors, for pixie's page.
				var why []string
				for _, d := range got.CSP {
					why = append(why, chromeCSPString(d))
				}
				if !slices.ContainsFunc(got.CSP, func(d *audits.ContentSecurityPolicyIssueDetails) bool {
					return d.ViolatedDirective == "frame-ancestors" && strings.HasPrefix(d.BlockedURL, ts.URL)
				}) {
					t.Errorf("Chrome reported CSP violations %q, want frame-ancestors for %s", why, ts.URL)
				}
				t.Logf("refused: the frame shows %s in place of %s; Chrome reports %q", got.URL, got.Unreachable, why)
				if got.HasMain || got.HasUsername {
					t.Errorf("pixie's page rendered in the frame: <main> %t, #username %t", got.HasMain, got.HasUsername)
				}
				for _, d := range got.Documents {
					if strings.HasPrefix(d, ts.URL) {
						t.Errorf("the page holds a document from pixie: %s", d)
					}
				}
			})
		}
	})

	// 6. Deny on the consent page: the app gets access_denied, with iss.
	t.Run("consent_deny", func(t *testing.T) {
		t.Parallel()
		f := newChromeFlow(t, otherClient)
		tab := chrome.newTab(t)

		tab.navigate(f.ar.URL, http.StatusOK)
		tab.wantLoginPage(f.ts, "Other App")
		tab.screenshot("login")
		resp := tab.logIn(aliceUsername, alicePassword)
		tab.wantConsentPage(f.ts, resp, "Other App")
		tab.screenshot("consent")

		resp = tab.submit(`button[name=decision][value=deny]`)
		tab.screenshot("callback")
		q := f.wantCallback(tab, resp)
		if got := q.Get("error"); got != "access_denied" {
			t.Errorf("got error %q, want access_denied", got)
		}
		if q.Has("code") {
			t.Errorf("got a code %q with the denial", q.Get("code"))
		}
	})

	// 7. On a phone: the pages fit 420 CSS pixels, every field has a
	// label, and the flow works with JavaScript turned off.
	t.Run("phone_without_javascript", func(t *testing.T) {
		t.Parallel()
		f := newChromeFlow(t, otherClient)
		tab := chrome.newTab(t)
		chromeRun(t, tab.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))

		tab.navigate(f.ar.URL, http.StatusOK)
		tab.wantLoginPage(f.ts, "Other App")
		tab.screenshot("login")
		tab.wantPhoneLayout("login", 1)

		resp := tab.logIn(aliceUsername, alicePassword)
		tab.wantConsentPage(f.ts, resp, "Other App")
		tab.screenshot("consent")
		tab.wantPhoneLayout("consent", 2)

		resp = tab.submit(`button[name=decision][value=allow]`)
		code := f.wantCode(tab, resp)
		tab.screenshot("callback")
		// The app's page sets its title from a script: that it did not
		// shows that scripts stayed off for the whole flow.
		if got := tab.title(); got != chromeAppTitle {
			t.Errorf("got title %q on the app's page, want %q: scripts ran", got, chromeAppTitle)
		}
		f.redeem(code)
	})
}

// chromeFramerPage is the other site's page that frames pixie.
var chromeFramerPage = template.Must(template.New("framer").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Another site</title></head>
<body><h1>Another site</h1><iframe id="victim" src="{{.}}" width="400" height="700"></iframe></body></html>`))

// chromeExecPath returns the Chromium binary named by PIXIE_TEST_BROWSER,
// skipping the test when it is unset (or a false value such as 0). "1" (or
// another true value) looks for chromium, chromium-browser and
// google-chrome on PATH; anything else is the binary's path or name. Once
// the tests are asked for, a missing browser is a failure, not a skip: CI
// must not pass by running nothing.
func chromeExecPath(t *testing.T) string {
	t.Helper()
	v := os.Getenv(chromeEnv)
	on, err := strconv.ParseBool(v)
	if v == "" || (err == nil && !on) {
		t.Skip("set PIXIE_TEST_BROWSER=1 (and install chromium) to run the browser tests")
	}
	if err == nil {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		t.Fatalf("%s=%s, but there is no chromium, chromium-browser or google-chrome on PATH: install Chromium (apt-get install chromium) or set %s to its path", chromeEnv, v, chromeEnv)
	}
	p, err := exec.LookPath(v)
	if err != nil {
		t.Fatalf("%s=%s: %v", chromeEnv, v, err)
	}
	return p
}

// chromeBrowser is a running Chromium.
type chromeBrowser struct {
	ctx context.Context // its chromedp context; tabs derive from it
}

// startChrome starts headless Chromium for the test, with a fresh profile,
// and closes it when the test ends.
func startChrome(t *testing.T) *chromeBrowser {
	t.Helper()
	path := chromeExecPath(t)
	profile := t.TempDir() // removed after the browser closes (cleanups run last in, first out)
	var out syncBuffer
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root in a container
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		// Containers have a small /dev/shm; Chromium crashes when it fills.
		chromedp.Flag("disable-dev-shm-usage", true),
		// No keyring on a CI machine: do not wait for one.
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(profile),
		// Headless Chromium keeps windows at least 500 pixels wide, so each
		// tab also emulates the viewport (see newTab).
		chromedp.WindowSize(chromeWidth, chromeHeight),
		chromedp.CombinedOutput(&out),
	}
	// Not t.Context(): it is canceled before the cleanups run, which would
	// kill the browser rather than close it and its profile.
	life, stop := context.WithTimeout(context.Background(), 5*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		// Close gracefully, then wait for the process to exit.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		if err := chromedp.Cancel(cctx); err != nil {
			t.Logf("close Chromium: %v", err)
		}
		ccancel()
		cancel()
		cancelAlloc()
		stop()
		if tail := chromeTail(out.String(), 4000); t.Failed() && tail != "" {
			t.Logf("Chromium's output:\n%s", tail)
		}
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v\n%s", path, err, chromeTail(out.String(), 4000))
	}
	t.Logf("started %s in %v", path, time.Since(start).Round(time.Millisecond))
	return &chromeBrowser{ctx: ctx}
}

// chromeTail returns the end of Chromium's output, without the lines
// about D-Bus, which a container lacks.
func chromeTail(s string, n int) string {
	lines := strings.Split(s, "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, "dbus") })
	s = strings.TrimSpace(strings.Join(lines, "\n"))
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// chromeTab is a browser tab with its own cookie jar (a fresh browser
// context), a 420x900 mobile viewport and light colours.
type chromeTab struct {
	t   *testing.T
	ctx context.Context // ends after chromeTabTimeout

	mu        sync.Mutex
	docs      []string                         // URLs of the documents requested, redirects included
	responses []*network.EventResponseReceived // responses for documents, frames' included
	// csp holds the Content-Security-Policy violations Chrome reported
	// (DevTools issues) and no check has taken yet.
	csp   []*audits.ContentSecurityPolicyIssueDetails
	shots int
}

// newTab opens a tab, closed when t ends. When t ends, the tab must have
// seen no Content-Security-Policy violation but those a check took (see
// takeCSP): a page of pixie's that breaks its own policy renders broken.
func (c *chromeBrowser) newTab(t *testing.T) *chromeTab {
	t.Helper()
	tabCtx, cancelTab := chromedp.NewContext(c.ctx, chromedp.WithNewBrowserContext())
	ctx, cancel := context.WithTimeout(tabCtx, chromeTabTimeout)
	t.Cleanup(func() {
		cancel()
		cancelTab()
	})
	tab := &chromeTab{t: t, ctx: ctx}
	if err := chromedp.Listen(ctx, tab.record); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	t.Cleanup(func() {
		for _, d := range tab.takeCSP() {
			t.Errorf("Chrome reported a Content-Security-Policy violation: %s", chromeCSPString(d))
		}
	})
	chromeRun(t, ctx, chromedp.Steps(
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, audits.Enable, cdp.Empty{}) // DevTools issues: CSP violations
			return err
		}),
		chromedp.EmulateViewport(chromeWidth, chromeHeight, chromedp.EmulateMobile, chromedp.EmulatePortrait),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}},
			})
			return err
		}),
	))
	return tab
}

// record keeps the tab's document requests and responses. It runs on
// chromedp's event loop, so it only appends.
func (tab *chromeTab) record(ev any) {
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if ev.Type == network.ResourceTypeDocument {
			tab.mu.Lock()
			tab.docs = append(tab.docs, ev.Request.URL)
			tab.mu.Unlock()
		}
	case *network.EventResponseReceived:
		if ev.Type == network.ResourceTypeDocument {
			tab.mu.Lock()
			tab.responses = append(tab.responses, ev)
			tab.mu.Unlock()
		}
	case *audits.EventIssueAdded:
		if ev.Issue != nil && ev.Issue.Code == audits.InspectorIssueCodeContentSecurityPolicyIssue &&
			ev.Issue.Details != nil && ev.Issue.Details.ContentSecurityPolicyIssueDetails != nil {
			tab.mu.Lock()
			tab.csp = append(tab.csp, ev.Issue.Details.ContentSecurityPolicyIssueDetails)
			tab.mu.Unlock()
		}
	}
}

// takeCSP returns the CSP violations reported so far, and forgets them.
func (tab *chromeTab) takeCSP() []*audits.ContentSecurityPolicyIssueDetails {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	csp := tab.csp
	tab.csp = nil
	return csp
}

func chromeCSPString(d *audits.ContentSecurityPolicyIssueDetails) string {
	s := d.ViolatedDirective
	if d.BlockedURL != "" {
		s += " blocked " + d.BlockedURL
	}
	if l := d.SourceCodeLocation; l != nil && l.URL != "" {
		s += fmt.Sprintf(" at %s:%d", l.URL, l.LineNumber+1)
	}
	return s
}

// documents returns the URLs of the documents the tab has requested.
func (tab *chromeTab) documents() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return slices.Clone(tab.docs)
}

// chromeRun runs an action, failing the test on an error.
func chromeRun[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("chromedp: %v", err)
	}
	return v
}

// chromeEval evaluates a JavaScript expression in the tab's page. It
// works with the page's scripts turned off: DevTools still evaluates.
func chromeEval[T any](tab *chromeTab, expr string) T {
	tab.t.Helper()
	return chromeRun(tab.t, tab.ctx, chromedp.Evaluate[T](expr))
}

// navigate opens a URL and waits for the page, which must come with the
// status want.
func (tab *chromeTab) navigate(rawURL string, want int64) *network.Response {
	tab.t.Helper()
	resp := chromeRun(tab.t, tab.ctx, chromedp.NavigateResponse(rawURL))
	if resp == nil || resp.Status != want {
		tab.t.Fatalf("open %s: got %+v, want status %d", rawURL, resp, want)
	}
	return resp
}

// one fails the test at once unless exactly one element matches sel.
// The page has loaded when it is called, and chromedp's queries would wait
// for a missing element until the tab's timeout.
func (tab *chromeTab) one(sel string) {
	tab.t.Helper()
	if n := chromeEval[int](tab, `document.querySelectorAll(`+chromeJSString(sel)+`).length`); n != 1 {
		tab.t.Fatalf("%d elements match %s on %s, want 1", n, sel, tab.location())
	}
}

// chromeJSString quotes s as a JavaScript string literal.
func chromeJSString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// submit clicks a submit button and waits for the page it leads to, after
// any redirects, returning its response.
func (tab *chromeTab) submit(button string) *network.Response {
	tab.t.Helper()
	tab.one(button)
	if chromeEval[bool](tab, `document.querySelector(`+chromeJSString(button)+`).disabled`) {
		tab.t.Fatalf("%s is disabled", button)
	}
	ctx, cancel := context.WithTimeout(tab.ctx, chromeClickTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(button)))
	if err != nil {
		tab.t.Fatalf("click %s: %v", button, err)
	}
	if resp == nil {
		tab.t.Fatalf("click %s: no response", button)
	}
	return resp
}

// logIn types the credentials into the login form and submits it.
func (tab *chromeTab) logIn(username, password string) *network.Response {
	tab.t.Helper()
	tab.one(`#username`)
	tab.one(`#password`)
	chromeRun(tab.t, tab.ctx, chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS(`#username`), username),
		chromedp.SendKeys(chromedp.CSS(`#password`), password),
	))
	if got := tab.value(`#username`); got != username {
		tab.t.Fatalf("typed %q into #username, it holds %q", username, got)
	}
	return tab.submit(`form button[type=submit]`)
}

func (tab *chromeTab) text(sel string) string {
	tab.t.Helper()
	tab.one(sel)
	return strings.TrimSpace(chromeRun(tab.t, tab.ctx, chromedp.Text(chromedp.CSS(sel))))
}

func (tab *chromeTab) value(sel string) string {
	tab.t.Helper()
	tab.one(sel)
	return chromeRun(tab.t, tab.ctx, chromedp.Value(chromedp.CSS(sel)))
}

func (tab *chromeTab) setValue(sel, v string) {
	tab.t.Helper()
	tab.one(sel)
	chromeRun(tab.t, tab.ctx, chromedp.SetValue(chromedp.CSS(sel), v))
	if got := tab.value(sel); got != v {
		tab.t.Fatalf("set %s to %q, it holds %q", sel, v, got)
	}
}

func (tab *chromeTab) title() string {
	tab.t.Helper()
	return chromeRun(tab.t, tab.ctx, chromedp.Title())
}

// location returns the URL of the page the tab shows.
func (tab *chromeTab) location() *url.URL {
	tab.t.Helper()
	loc := chromeRun(tab.t, tab.ctx, chromedp.Location())
	u, err := url.Parse(loc)
	if err != nil {
		tab.t.Fatalf("location %q: %v", loc, err)
	}
	return u
}

// screenshot saves a full-page PNG of the tab, named after the page, in
// the test's artifact directory, and returns it.
func (tab *chromeTab) screenshot(name string) []byte {
	tab.t.Helper()
	buf := chromeRun(tab.t, tab.ctx, chromedp.FullScreenshot(100))
	cfg, err := png.DecodeConfig(bytes.NewReader(buf))
	if err != nil {
		tab.t.Fatalf("screenshot %s: not a PNG: %v", name, err)
	}
	if cfg.Width != chromeWidth || cfg.Height < chromeHeight {
		tab.t.Errorf("screenshot %s is %dx%d, want %d wide and at least %d high", name, cfg.Width, cfg.Height, chromeWidth, chromeHeight)
	}
	tab.mu.Lock()
	tab.shots++
	file := filepath.Join(tab.t.ArtifactDir(), fmt.Sprintf("%02d-%s.png", tab.shots, name))
	tab.mu.Unlock()
	if err := os.WriteFile(file, buf, 0o644); err != nil {
		tab.t.Fatal(err)
	}
	return buf
}

// wantLoginPage checks that the tab shows pixie's login page for the app.
func (tab *chromeTab) wantLoginPage(ts *testServer, clientName string) {
	tab.t.Helper()
	if loc := tab.location(); loc.Scheme+"://"+loc.Host != ts.URL || loc.Path != handlers.PathLogin {
		tab.t.Fatalf("the browser is at %s, want the login page %s%s", loc, ts.URL, handlers.PathLogin)
	}
	if got, want := tab.title(), "Sign in to "+clientName; got != want {
		tab.t.Errorf("got title %q, want %q", got, want)
	}
	if got, want := tab.text(`main p strong`), clientName; got != want {
		tab.t.Errorf("got app name %q on the login page, want %q", got, want)
	}
}

// wantConsentPage checks that resp, the page after the login, is pixie's
// consent page for the app, listing what it asks for (allScopes).
func (tab *chromeTab) wantConsentPage(ts *testServer, resp *network.Response, clientName string) {
	tab.t.Helper()
	if resp.Status != http.StatusOK || !strings.HasPrefix(resp.URL, ts.URL+handlers.PathConsent+"?") {
		tab.t.Fatalf("got status %d at %s, want the consent page", resp.Status, resp.URL)
	}
	if got, want := tab.text(`h1`), "Allow "+clientName+"?"; got != want {
		tab.t.Errorf("got heading %q, want %q", got, want)
	}
	if got := tab.text(`main p strong`); got != clientName {
		tab.t.Errorf("got app name %q on the consent page, want %q", got, clientName)
	}
	got := chromeEval[[]string](tab, `[...document.querySelectorAll('ul.scopes li')].map(li => li.textContent.trim())`)
	want := []string{ // allScopes, in words
		"Sign you in with your account",
		"See your name and profile",
		"See your email address",
		"Stay signed in when you are not using it",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		tab.t.Errorf("got scopes %q on the consent page, want %q", got, want)
	}
	for _, b := range []string{"allow", "deny"} {
		if n := chromeEval[int](tab, `document.querySelectorAll('form button[type=submit][name=decision][value=`+b+`]').length`); n != 1 {
			tab.t.Errorf("got %d %s buttons, want 1", n, b)
		}
	}
}

// wantErrorPage checks that the tab shows pixie's error page with the
// OAuth error code and a description starting with desc.
func (tab *chromeTab) wantErrorPage(ts *testServer, code, desc string) {
	tab.t.Helper()
	if loc := tab.location(); !strings.HasPrefix(loc.String(), ts.URL) {
		tab.t.Errorf("the browser is at %s, want a page of %s", loc, ts.URL)
	}
	if got, want := tab.text(`h1`), "Something went wrong"; got != want {
		tab.t.Errorf("got heading %q, want %q", got, want)
	}
	if got, want := tab.text(`[role=alert]`), code+": "+desc; !strings.HasPrefix(got, want) {
		tab.t.Errorf("got alert %q, want it to start with %q", got, want)
	}
	if n := chromeEval[int](tab, `document.querySelectorAll('input[type=password]').length`); n != 0 {
		tab.t.Errorf("the error page has %d password fields", n)
	}
}

// chromeLayout is what wantPhoneLayout measures, in CSS pixels.
type chromeLayout struct {
	InnerWidth  float64  `json:"innerWidth"`
	ScrollWidth float64  `json:"scrollWidth"`
	Scripts     int      `json:"scripts"`
	Handlers    []string `json:"handlers"` // elements with on* attributes
	Controls    []struct {
		Tag      string   `json:"tag"`
		ID       string   `json:"id"`
		Text     string   `json:"text"`
		Left     float64  `json:"left"`
		Right    float64  `json:"right"`
		Width    float64  `json:"width"`
		Height   float64  `json:"height"`
		FontSize float64  `json:"fontSize"`
		Labels   []string `json:"labels"` // for each <label> of the control: its for attribute and text, "for|text"
	} `json:"controls"`
}

const chromeLayoutJS = `(() => {
	const controls = [...document.querySelectorAll('input:not([type=hidden]), button, select, textarea')].map(el => {
		const r = el.getBoundingClientRect();
		return {
			tag: el.tagName.toLowerCase(), id: el.id, text: el.textContent.trim(),
			left: r.left, right: r.right, width: r.width, height: r.height,
			fontSize: parseFloat(getComputedStyle(el).fontSize),
			labels: [...(el.labels || [])].map(l => l.htmlFor + '|' + l.textContent.trim()),
		};
	});
	const handlers = [...document.querySelectorAll('*')].flatMap(el =>
		[...el.attributes].filter(a => a.name.startsWith('on')).map(a => el.tagName.toLowerCase() + ' ' + a.name));
	return {
		innerWidth: window.innerWidth,
		scrollWidth: document.documentElement.scrollWidth,
		scripts: document.scripts.length,
		handlers, controls,
	};
})()`

// wantPhoneLayout checks the page on the tab's 420-pixel mobile viewport:
// laid out for it (the viewport meta tag), nothing wider than the screen,
// every control inside it, labelled, big enough to tap, in text big
// enough that phones do not zoom in on focus; and no scripts.
func (tab *chromeTab) wantPhoneLayout(pageName string, wantButtons int) {
	tab.t.Helper()
	l := chromeEval[chromeLayout](tab, chromeLayoutJS)
	if l.InnerWidth != chromeWidth {
		tab.t.Errorf("%s: laid out %v pixels wide on a %d-pixel phone; want the viewport meta tag's width=device-width", pageName, l.InnerWidth, chromeWidth)
	}
	if l.ScrollWidth > chromeWidth {
		tab.t.Errorf("%s: the page is %v pixels wide, wider than the %d-pixel screen", pageName, l.ScrollWidth, chromeWidth)
	}
	if l.Scripts != 0 || len(l.Handlers) != 0 {
		tab.t.Errorf("%s: got %d scripts and event handlers %q; the pages use no JavaScript", pageName, l.Scripts, l.Handlers)
	}
	buttons := 0
	for _, c := range l.Controls {
		name := c.Tag + "#" + c.ID
		if c.Tag == "button" {
			buttons++
			name = "button " + strconv.Quote(c.Text)
			if c.Text == "" {
				tab.t.Errorf("%s: a button has no text", pageName)
			}
			// 44 CSS pixels: the smallest comfortable touch target (Apple's
			// HIG, WCAG 2.5.5).
			if c.Height < 44 {
				tab.t.Errorf("%s: %s is %v pixels high, want at least 44 to tap", pageName, name, c.Height)
			}
		} else {
			if c.ID == "" || len(c.Labels) == 0 {
				tab.t.Errorf("%s: %s has no <label for>", pageName, name)
			}
			for _, lb := range c.Labels {
				if forID, text, _ := strings.Cut(lb, "|"); forID != c.ID || text == "" {
					tab.t.Errorf("%s: %s has label %q, want <label for=%q> with text", pageName, name, lb, c.ID)
				}
			}
			// Below 16px, iOS Safari zooms in on the field when it gets focus.
			if c.FontSize < 16 {
				tab.t.Errorf("%s: %s has %vpx text, want at least 16px", pageName, name, c.FontSize)
			}
		}
		if c.Width <= 0 || c.Left < 0 || c.Right > chromeWidth {
			tab.t.Errorf("%s: %s spans %v to %v pixels, want it inside the %d-pixel screen", pageName, name, c.Left, c.Right, chromeWidth)
		}
	}
	if buttons != wantButtons {
		tab.t.Errorf("%s: got %d buttons, want %d", pageName, buttons, wantButtons)
	}
}

// chromeFrame is what a page framing another one shows.
type chromeFrame struct {
	Top         string            // the top page's URL
	URL         string            // the frame's URL, as the browser's frame tree has it
	Unreachable string            // the URL the frame failed to show, if it did
	Response    *network.Response // the response for the frame's document, nil if none came
	Documents   []string          // URLs of every document in the page's DOM, frames' included
	HasMain     bool              // a <main> element is in the DOM (every pixie page has one; the framing page has none)
	HasUsername bool              // an element with id username is in the DOM
	// CSP holds the Content-Security-Policy violations Chrome reported
	// while the page loaded.
	CSP []*audits.ContentSecurityPolicyIssueDetails
}

// frame opens framer?src=src, a page with one iframe showing src, and
// reports what the browser made of the frame: Chrome's frame tree, the
// network response, and the DOM of every frame the page holds (DevTools
// sees inside frames of other origins, which the page's own scripts
// cannot).
func (tab *chromeTab) frame(framer, src string) chromeFrame {
	tab.t.Helper()
	tab.takeCSP()
	tab.navigate(framer+"?"+url.Values{"src": {src}}.Encode(), http.StatusOK)
	var f chromeFrame
	// The load event waits for the frame, refused or not; poll a little in
	// case its commit is reported late.
	var child *cdppage.FrameTree
	for {
		tree := chromeRun(tab.t, tab.ctx, chromeFrameTree)
		f.Top = tree.Frame.URL
		if len(tree.ChildFrames) != 1 {
			tab.t.Fatalf("the framing page has %d frames, want 1", len(tree.ChildFrames))
		}
		child = tree.ChildFrames[0]
		if u := child.Frame.URL; u != "" && u != "about:blank" {
			break
		}
		select {
		case <-tab.ctx.Done():
			tab.t.Fatalf("the frame never loaded: %+v", child.Frame)
		case <-time.After(50 * time.Millisecond):
		}
	}
	f.URL, f.Unreachable = child.Frame.URL, child.Frame.UnreachableURL
	tab.mu.Lock()
	for _, ev := range tab.responses {
		if ev.FrameID == child.Frame.ID {
			f.Response = ev.Response
		}
	}
	tab.mu.Unlock()

	doc := chromeRun(tab.t, tab.ctx, chromedp.Action[*cdp.Node](func(ctx context.Context, tg *chromedp.Target) (*cdp.Node, error) {
		depth, pierce := int64(-1), true
		res, err := cdp.Call(ctx, tg, dom.GetDocument, dom.GetDocumentParams{Depth: &depth, Pierce: &pierce})
		return res.Root, err
	}))
	var walk func(n *cdp.Node)
	walk = func(n *cdp.Node) {
		if n == nil {
			return
		}
		switch {
		case n.NodeType == int64(chromedp.NodeTypeDocument):
			f.Documents = append(f.Documents, n.DocumentURL)
		case n.NodeName == "MAIN":
			f.HasMain = true
		}
		for i := 0; i+1 < len(n.Attributes); i += 2 {
			if n.Attributes[i] == "id" && n.Attributes[i+1] == "username" {
				f.HasUsername = true
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
		walk(n.ContentDocument)
	}
	walk(doc)
	// Chrome reports the violation as it blocks the frame, before the load
	// event; wait a little for it all the same, as issues can come late.
	f.CSP = tab.takeCSP()
	for deadline := time.Now().Add(2 * time.Second); len(f.CSP) == 0 && !strings.HasPrefix(f.URL, "http") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		f.CSP = tab.takeCSP()
	}
	return f
}

var chromeFrameTree = chromedp.Action[*cdppage.FrameTree](func(ctx context.Context, tg *chromedp.Target) (*cdppage.FrameTree, error) {
	res, err := cdp.Call(ctx, tg, cdppage.GetFrameTree, cdp.Empty{})
	return res.FrameTree, err
})

// chromeHeader returns a response header from DevTools' map, whose keys
// keep the case they were sent in.
func chromeHeader(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// chromeAppTitle is the title of the app's page while its script has not run.
const chromeAppTitle = "Example app"

// chromeApp is a native app's loopback listener (RFC 8252 §7.3): it records
// every request and answers the redirect with a small page.
type chromeApp struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []*url.URL // every request, favicon included
}

func newChromeApp(t *testing.T) *chromeApp {
	t.Helper()
	a := &chromeApp{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.requests = append(a.requests, r.URL)
		a.mu.Unlock()
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">`+
			`<title>`+chromeAppTitle+`</title></head><body><p id="result">ok</p>`+
			`<script>document.title = "Example app (scripts on)"</script></body></html>`)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// redirectURI is the app's redirect URI: the registered loopback URI
// with the listener's port.
func (a *chromeApp) redirectURI() string { return a.srv.URL + "/callback" }

// callbacks returns the queries of the requests to /callback.
func (a *chromeApp) callbacks() []url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	var qs []url.Values
	for _, u := range a.requests {
		if u.Path == "/callback" {
			qs = append(qs, u.Query())
		}
	}
	return qs
}

// chromeFlow is one authorization request of an app, to a fresh server.
type chromeFlow struct {
	t      *testing.T
	ts     *testServer
	app    *chromeApp
	client string
	ar     *authRequest // S256 PKCE, state and nonce, by x/oauth2
}

func newChromeFlow(t *testing.T, client string) *chromeFlow {
	t.Helper()
	// A server of its own: consents given and failed logins counted in one
	// subtest must not change another.
	ts := newTestServer(t, serverOptions{})
	app := newChromeApp(t)
	return &chromeFlow{t: t, ts: ts, app: app, client: client,
		ar: newAuthRequest(ts.oauth2Config(client, app.redirectURI(), allScopes))}
}

// wantCallback checks that the browser landed on the app's redirect URI
// (resp is the last page), which was called once with the request's state
// and pixie's iss (RFC 9207); it returns that call's query.
func (f *chromeFlow) wantCallback(tab *chromeTab, resp *network.Response) url.Values {
	f.t.Helper()
	if resp.Status != http.StatusOK || !strings.HasPrefix(resp.URL, f.app.redirectURI()+"?") {
		f.t.Fatalf("got status %d at %s, want the app's %s", resp.Status, resp.URL, f.app.redirectURI())
	}
	if got := tab.text(`#result`); got != "ok" {
		f.t.Errorf("the app's page says %q, want ok", got)
	}
	calls := f.app.callbacks()
	if len(calls) != 1 {
		f.t.Fatalf("the app got %d redirects, want 1: %v", len(calls), calls)
	}
	q := calls[0]
	if got := q.Get("state"); got != f.ar.State {
		f.t.Errorf("got state %q, want %q", got, f.ar.State)
	}
	if got := q.Get("iss"); got != f.ts.URL {
		f.t.Errorf("got iss %q, want %q", got, f.ts.URL)
	}
	return q
}

// wantCode checks the redirect to the app and returns its code.
func (f *chromeFlow) wantCode(tab *chromeTab, resp *network.Response) string {
	f.t.Helper()
	q := f.wantCallback(tab, resp)
	if e := q.Get("error"); e != "" {
		f.t.Fatalf("got error %q (%s), want a code", e, q.Get("error_description"))
	}
	code := q.Get("code")
	if code == "" {
		f.t.Fatalf("got no code in %v", q)
	}
	return code
}

// wantNoCallback checks that the app's listener has had no request at all.
func (f *chromeFlow) wantNoCallback() {
	f.t.Helper()
	f.app.mu.Lock()
	defer f.app.mu.Unlock()
	if len(f.app.requests) != 0 {
		f.t.Errorf("the app got %d requests, want none: %v", len(f.app.requests), f.app.requests)
	}
}

// redeem exchanges the code with x/oauth2 (which fails on any status but
// 2xx) and verifies the ID token with go-oidc.
func (f *chromeFlow) redeem(code string) {
	f.t.Helper()
	ctx := f.t.Context()
	tok, err := f.ar.exchange(ctx, code)
	if err != nil {
		f.t.Fatalf("exchange the code: %v", err)
	}
	if tok.AccessToken == "" || tok.Type() != "Bearer" || tok.RefreshToken == "" {
		f.t.Errorf("got access token %t, type %q, refresh token %t; want a Bearer token and a refresh token (offline_access)", tok.AccessToken != "", tok.Type(), tok.RefreshToken != "")
	}
	if got, want := scopeSet(fmt.Sprint(tok.Extra("scope"))), scopeSet(allScopes); !slices.Equal(got, want) {
		f.t.Errorf("got scope %v, want %v", got, want)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		f.t.Fatal("got no ID token")
	}
	idt, err := f.ts.oidcProvider(f.t).VerifierContext(ctx, &oidc.Config{ClientID: f.client}).Verify(ctx, raw)
	if err != nil {
		f.t.Fatalf("verify the ID token: %v", err)
	}
	if idt.Nonce != f.ar.Nonce {
		f.t.Errorf("got nonce %q, want %q", idt.Nonce, f.ar.Nonce)
	}
	if idt.Subject != "alice" {
		f.t.Errorf("got sub %q, want alice", idt.Subject)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		f.t.Errorf("at_hash: %v", err)
	}
}

// chromeWriteDocs writes the README's screenshots to docs/.
func chromeWriteDocs(t *testing.T, files map[string][]byte) {
	t.Helper()
	dir := filepath.Join("..", "docs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", p)
	}
}
