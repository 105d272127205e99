package provider

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// fill sets every field reachable from v to a non-zero value.
func fill(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(t, v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 2, 13, 0, 0, 123, time.UTC)))
			return
		}
		for i := range v.NumField() {
			fill(t, v.Field(i))
		}
	case reflect.String:
		v.SetString("x-" + v.Type().Name())
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint8:
		v.SetInt(2)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(t, v.Index(0))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fill(t, k)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(t, e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Interface:
		v.Set(reflect.ValueOf("value"))
	default:
		t.Fatalf("fill: unhandled kind %s", v.Kind())
	}
}

// TestSessionCodec: a session with every field of fosite's claims and
// headers set comes back equal through the compact form (so a field fosite
// adds and the form lacks fails here), the form is far smaller than
// fosite's, and a session stored in fosite's form still decodes.
func TestSessionCodec(t *testing.T) {
	s := newSession()
	fill(t, reflect.ValueOf(s))
	s.ExpiresAt = map[fosite.TokenType]time.Time{fosite.AccessToken: time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), `{"v":2`) {
		t.Fatalf("got %s, want the compact form", data)
	}
	got := newSession()
	if err := json.Unmarshal(data, got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("round trip:\ngot  %+v\nwant %+v\nvia %s", got, s, data)
	}

	// A typical session: the compact form leaves out fosite's zero members.
	typical := newSession()
	typical.Subject, typical.Claims.Subject = "alice", "alice"
	typical.Claims.AuthTime = time.Now().UTC().Truncate(time.Second)
	typical.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour).Round(0))
	compact, err := json.Marshal(typical)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := json.Marshal((*sessionFields)(typical))
	if err != nil {
		t.Fatal(err)
	}
	if len(compact)*2 > len(legacy) {
		t.Errorf("compact form %d bytes, fosite's %d: want at most half\n%s", len(compact), len(legacy), compact)
	}
	old := newSession()
	if err := json.Unmarshal(legacy, old); err != nil {
		t.Fatalf("fosite's form: %v", err)
	}
	if old.Subject != "alice" || old.Claims.Subject != "alice" || !old.Claims.AuthTime.Equal(typical.Claims.AuthTime) ||
		!old.GetExpiresAt(fosite.AccessToken).Equal(typical.GetExpiresAt(fosite.AccessToken)) {
		t.Errorf("fosite's form: got %+v %+v, want %+v %+v", old, old.Claims, typical, typical.Claims)
	}
}
