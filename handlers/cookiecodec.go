package handlers

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gorilla/securecookie"
)

// cookieValues is the login cookie's serializer: its values (the session ID
// and the CSRF token, strings under string keys) as a JSON object. gorilla's
// default, gob, compiles a decoder on every read, which made decoding the
// cookie an eighth of the allocations of a whole flow. Cookies written in
// gob by earlier versions still decode, so nobody is logged out by an
// upgrade: a gob stream never starts with '{', and one that does not
// parse as JSON is handed to gob.
type cookieValues struct{}

var _ securecookie.Serializer = cookieValues{}

func (cookieValues) Serialize(src any) ([]byte, error) {
	values, ok := src.(map[any]any)
	if !ok {
		return nil, fmt.Errorf("handlers: cookie values are %T, not map[any]any", src)
	}
	m := make(map[string]string, len(values))
	for k, v := range values {
		ks, kok := k.(string)
		vs, vok := v.(string)
		if !kok || !vok {
			return nil, fmt.Errorf("handlers: cookie value %v=%v is not a string pair", k, v)
		}
		m[ks] = vs
	}
	return json.Marshal(m)
}

func (cookieValues) Deserialize(src []byte, dst any) error {
	values, ok := dst.(*map[any]any)
	if !ok {
		return fmt.Errorf("handlers: cookie values decode into %T, not *map[any]any", dst)
	}
	if len(src) > 0 && src[0] == '{' {
		if flatStringObject(src, *values) {
			return nil
		}
		var m map[string]string
		if err := json.Unmarshal(src, &m); err == nil {
			if *values == nil {
				*values = make(map[any]any, len(m))
			}
			for k, v := range m {
				(*values)[k] = v
			}
			return nil
		}
	}
	if err := (securecookie.GobEncoder{}).Deserialize(src, dst); err != nil {
		return errors.Join(errors.New("handlers: cookie values are neither JSON nor gob"), err)
	}
	return nil
}

// flatStringObject adds to values the members of src when it is what
// Serialize writes for plain values: a compact JSON object of at most
// eight strings of printable ASCII without escapes, as the session ID and
// CSRF token are. It reports false, having added nothing, for anything
// else, which json.Unmarshal then decodes; for what it takes, the result is
// the same (the last of repeated names wins). The strings share one copy
// of src.
func flatStringObject(src []byte, values map[any]any) bool {
	if values == nil || len(src) < 2 || src[0] != '{' {
		return false
	}
	var bounds [8][4]int // name start and end, value start and end
	n, i := 0, 1
	for i < len(src) && src[i] != '}' {
		if n > 0 {
			if src[i] != ',' {
				return false
			}
			i++
		}
		if n == len(bounds) {
			return false
		}
		ns, ne, ok := plainString(src, i)
		if !ok || ne+1 >= len(src) || src[ne+1] != ':' {
			return false
		}
		vs, ve, ok := plainString(src, ne+2)
		if !ok {
			return false
		}
		bounds[n] = [4]int{ns, ne, vs, ve}
		n++
		i = ve + 1
	}
	if i != len(src)-1 {
		return false // no closing brace, or something after it
	}
	all := string(src)
	for _, b := range bounds[:n] {
		values[all[b[0]:b[1]]] = all[b[2]:b[3]]
	}
	return true
}

// plainString reads the JSON string at src[i:] if it is printable ASCII
// without a reverse solidus, and returns the bounds of its text (the
// closing quote at end).
func plainString(src []byte, i int) (start, end int, ok bool) {
	if i >= len(src) || src[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(src); j++ {
		switch c := src[j]; {
		case c == '"':
			return i + 1, j, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return 0, 0, false
		}
	}
	return 0, 0, false
}
