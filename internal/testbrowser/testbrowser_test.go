package testbrowser

import (
	"maps"
	"net/url"
	"testing"
)

func TestAttrs(t *testing.T) {
	tests := []struct {
		name string
		tag  string
		want map[string]string
	}{
		{
			// html/template escapes + as &#43; and & as &amp;.
			name: "escaped value",
			tag:  `<input type="hidden" name="request" value="scope=openid&#43;profile&amp;state=a%2Fb">`,
			want: map[string]string{"type": "hidden", "name": "request", "value": "scope=openid+profile&state=a%2Fb"},
		},
		{
			name: "boolean attribute and newline",
			tag:  "<input\ntype=\"password\" name=\"password\" required>",
			want: map[string]string{"type": "password", "name": "password", "required": ""},
		},
		{
			name: "self-closing, upper case",
			tag:  `<INPUT NAME="csrf_token" VALUE="x"/>`,
			want: map[string]string{"name": "csrf_token", "value": "x"},
		},
	}
	for _, tt := range tests {
		if got := attrs(tt.tag); !maps.Equal(got, tt.want) {
			t.Errorf("%s: attrs(%q): got %v, want %v", tt.name, tt.tag, got, tt.want)
		}
	}
}

func TestOriginOf(t *testing.T) {
	tests := []struct {
		url, want string
	}{
		{"http://127.0.0.1:8080/authorize?x=1", "http://127.0.0.1:8080"},
		{"HTTP://Example.COM/", "http://example.com"},
		// The loopback redirect is on the same host but another port: another origin.
		{"http://127.0.0.1:9999/callback", "http://127.0.0.1:9999"},
		{"com.example.app:/oauth2redirect?code=c", "com.example.app:"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := originOf(u); got != tt.want {
			t.Errorf("originOf(%s): got %q, want %q", tt.url, got, tt.want)
		}
	}
}
