package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// printer writes the transcript. Write errors are ignored: the transcript
// is informational and a closed stdout must not change the outcome.
type printer struct{ w io.Writer }

func (p printer) line(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

// field prints an indented "key value" line.
func (p printer) field(key string, value any) {
	fmt.Fprintf(p.w, "  %-14s %v\n", key, value)
}

// redact returns a short prefix of a secret and its length, such as
// "ory_at_Ab12…(87 chars)". It shows at most 11 characters and at most a
// quarter of s, so short secrets stay hidden.
func redact(s string) string {
	if s == "" {
		return "(empty)"
	}
	n := min(11, len(s)/4)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return printable(s[:n]) + "…(" + fmt.Sprint(utf8.RuneCountInString(s)) + " chars)"
}

// printToken prints a token response with every token redacted.
func printToken(p printer, tok *oauth2.Token) {
	p.field("token_type", printable(tok.Type()))
	p.field("access_token", redact(tok.AccessToken))
	if tok.Expiry.IsZero() {
		p.field("expires", "(no expires_in)")
	} else {
		p.field("expires", fmt.Sprintf("%s (in %v)", tok.Expiry.Format(time.RFC3339), time.Until(tok.Expiry).Round(time.Second)))
	}
	if scope, ok := tok.Extra("scope").(string); ok {
		p.field("scope", printable(scope))
	} else {
		p.field("scope", "(not returned: as requested, RFC 6749 §5.1)")
	}
	if tok.RefreshToken != "" {
		p.field("refresh_token", "issued: "+redact(tok.RefreshToken))
	} else {
		p.field("refresh_token", "not issued")
	}
	if id, ok := tok.Extra("id_token").(string); ok && id != "" {
		p.field("id_token", redact(id))
	}
}

// printClaims prints claims sorted by name, each value as JSON (which also
// escapes control characters a server might send).
func printClaims(p printer, claims map[string]any) {
	for _, k := range slices.Sorted(maps.Keys(claims)) {
		v, err := json.Marshal(claims[k])
		if err != nil {
			v = []byte("(unprintable)")
		}
		p.field(printable(k), string(v))
	}
}

// printable replaces control characters other than newline and tab, so text
// from the server cannot drive the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return utf8.RuneError
	}, s)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func quotedOrNone(s string) string {
	if s == "" {
		return "(not present)"
	}
	return fmt.Sprintf("%q", s)
}
