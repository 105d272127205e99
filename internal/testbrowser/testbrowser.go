// Package testbrowser plays a person's web browser in tests of a pixie
// server: it follows an authorization request to the login page, signs in,
// and stops at the redirect back to the client, which a real browser would
// hand to the app.
//
// It knows only what a browser sees: redirects, cookies and the default login
// page's form (its hidden inputs, such as csrf_token and request, and the
// username and password fields). It is for tests only; it imports nothing
// from pixie.
package testbrowser

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// maxSteps bounds the requests Login makes, like a browser's redirect limit.
const maxSteps = 20

// NewClient returns an HTTP client with an empty cookie jar and a 10-second
// timeout: a fresh browser profile for [Login].
func NewClient() *http.Client {
	jar, _ := cookiejar.New(nil) // never fails with nil options
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// Login GETs authorizeURL with client and follows the redirects that stay on
// the authorization server's origin (scheme, host and port). When the server
// shows its login form, Login fills in username and password and posts it,
// with an Origin header as a browser sends. It returns the first redirect
// that leaves the server's origin, without following it: the authorization
// response for the client's redirect URI, carrying a code or an error
// (RFC 6749 §4.1.2). A server that redirects without showing the form (an
// existing login session, or an error it sends back to the client) gets no
// credentials.
//
// client must have a cookie jar: the login session is a cookie. Its
// CheckRedirect is not used; every redirect is followed with a GET. Login
// fails if the server answers with any other page (an error page, or the
// login form again, which means the credentials were refused; the page's
// message is in the error), or after too many requests.
//
// Login is safe for concurrent use with distinct clients.
func Login(ctx context.Context, client *http.Client, authorizeURL, username, password string) (*url.URL, error) {
	if client == nil || client.Jar == nil {
		return nil, errors.New("testbrowser: the client needs a cookie jar")
	}
	start, err := url.Parse(authorizeURL)
	if err != nil || !start.IsAbs() {
		return nil, fmt.Errorf("testbrowser: authorize URL %q is not absolute", authorizeURL)
	}
	origin := originOf(start)
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authorizeURL, nil)
	if err != nil {
		return nil, fmt.Errorf("testbrowser: %w", err)
	}
	posted := false
	for range maxSteps {
		resp, body, err := do(&c, req)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				return nil, fmt.Errorf("testbrowser: %s %s: %s without a usable Location: %w", req.Method, req.URL, resp.Status, err)
			}
			if originOf(loc) != origin {
				return loc, nil
			}
			if req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil); err != nil {
				return nil, fmt.Errorf("testbrowser: %w", err)
			}
		case resp.StatusCode == http.StatusOK && isLoginForm(body):
			if posted {
				return nil, fmt.Errorf("testbrowser: login refused: %s", pageText(body))
			}
			if req, err = loginRequest(ctx, resp.Request.URL, body, origin, username, password); err != nil {
				return nil, err
			}
			posted = true
		default:
			return nil, fmt.Errorf("testbrowser: %s %s: %s: %s", req.Method, req.URL.Redacted(), resp.Status, pageText(body))
		}
	}
	return nil, fmt.Errorf("testbrowser: more than %d requests without leaving %s", maxSteps, origin)
}

// LoginAndFollow is [Login] followed by a GET of the redirect it returns, with
// client's own redirect policy, as a browser delivers the authorization
// response to a web or loopback redirect URI. It returns that response's
// status code.
func LoginAndFollow(ctx context.Context, client *http.Client, authorizeURL, username, password string) (int, error) {
	to, err := Login(ctx, client, authorizeURL, username, password)
	if err != nil {
		return 0, err
	}
	return Get(ctx, client, to.String())
}

// Get GETs u with client, discards the body and returns the status code: a
// browser following a link or a redirect.
func Get(ctx context.Context, client *http.Client, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("testbrowser: %w", err)
	}
	resp, _, err := do(client, req)
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// do sends req and reads (at most 1 MiB of) the body.
func do(c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("testbrowser: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("testbrowser: %s %s: reading the body: %w", req.Method, req.URL.Redacted(), err)
	}
	return resp, body, nil
}

var (
	formTag  = regexp.MustCompile(`(?is)<form\b[^>]*>`)
	inputTag = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	// html/template quotes every attribute value with double quotes.
	attribute = regexp.MustCompile(`(?s)([A-Za-z_:][-A-Za-z0-9_:.]*)(?:\s*=\s*"([^"]*)")?`)
	tag       = regexp.MustCompile(`(?s)<[^>]*>`)
	tagName   = regexp.MustCompile(`^<[A-Za-z]+`)
)

// attrs returns the attributes of one start tag, values unescaped.
func attrs(t string) map[string]string {
	t = tagName.ReplaceAllString(strings.TrimSuffix(strings.TrimSuffix(t, ">"), "/"), "")
	m := map[string]string{}
	for _, a := range attribute.FindAllStringSubmatch(t, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2])
	}
	return m
}

func isLoginForm(body []byte) bool {
	hasPassword := false
	for _, in := range inputTag.FindAllString(string(body), -1) {
		if a := attrs(in); a["name"] == "password" && a["type"] == "password" {
			hasPassword = true
		}
	}
	return hasPassword && formTag.Match(body)
}

// loginRequest builds the POST of the login form on page (at pageURL): every
// hidden input, username and password. The form must post to the server's
// own origin.
func loginRequest(ctx context.Context, pageURL *url.URL, page []byte, origin, username, password string) (*http.Request, error) {
	form := attrs(formTag.FindString(string(page)))
	if m := strings.ToLower(form["method"]); m != "post" {
		return nil, fmt.Errorf("testbrowser: the login form's method is %q, want post", m)
	}
	action, err := pageURL.Parse(form["action"])
	if err != nil {
		return nil, fmt.Errorf("testbrowser: the login form's action %q: %w", form["action"], err)
	}
	if originOf(action) != origin {
		return nil, fmt.Errorf("testbrowser: the login form posts to %s, not to %s", originOf(action), origin)
	}
	v := url.Values{}
	for _, in := range inputTag.FindAllString(string(page), -1) {
		if a := attrs(in); a["type"] == "hidden" && a["name"] != "" {
			v.Set(a["name"], a["value"])
		}
	}
	if v.Get("csrf_token") == "" {
		return nil, errors.New("testbrowser: the login form has no csrf_token")
	}
	v.Set("username", username)
	v.Set("password", password)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(v.Encode()))
	if err != nil {
		return nil, fmt.Errorf("testbrowser: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	return req, nil
}

// originOf returns u's origin as a browser writes it in the Origin header
// (RFC 6454 §6.1), ports included; for a custom scheme such as
// com.example.app:/oauth2redirect it is just the scheme, which never equals
// an http origin.
func originOf(u *url.URL) string {
	if u.Host == "" {
		return strings.ToLower(u.Scheme) + ":"
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

// pageText returns the text of the page's alert (the login or error
// message) or else of the whole page, tags removed, for error messages.
func pageText(body []byte) string {
	s := string(body)
	if i := strings.Index(s, `role="alert"`); i >= 0 {
		s = s[i:]
		if j := strings.Index(s, "</div>"); j >= 0 {
			s = s[:j]
		}
		s = s[strings.Index(s, ">")+1:]
	}
	s = html.UnescapeString(tag.ReplaceAllString(s, " "))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
