package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// secretSet is every secret of the suite: fixed ones (client secrets, the
// database password), the access tokens the emulator issued and the
// passwords it received.
type secretSet struct {
	mu        sync.Mutex
	fixed     map[string]string // value → what it is
	tokens    map[string]bool
	passwords map[string]bool
}

func newSecretSet() *secretSet {
	return &secretSet{fixed: map[string]string{}, tokens: map[string]bool{}, passwords: map[string]bool{}}
}

func (s *secretSet) addFixed(value, what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fixed[value] = what
}

func (s *secretSet) addToken(t string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[t] = true
}

func (s *secretSet) addPassword(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.passwords[p] = true
}

// counts returns how many tokens and passwords were noted.
func (s *secretSet) counts() (tokens, passwords int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens), len(s.passwords)
}

// leak is one secret found where it must not be. It names the kind of
// secret and where, never the secret itself.
type leak struct {
	Where string
	What  string
	Line  int // 1-based; 0 = not line-oriented
}

func (l leak) String() string {
	if l.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", l.Where, l.Line, l.What)
	}
	return fmt.Sprintf("%s: %s", l.Where, l.What)
}

// scan searches data for every secret: the fixed ones, the tokens, any JWT
// ("eyJ", the base64 of `{"`), a "password" key, and every noted password
// (by a sliding window per password length, so that thousands cost one pass
// each).
func (s *secretSet) scan(where string, data []byte) []leak {
	s.mu.Lock()
	fixed := maps.Clone(s.fixed)
	tokens := slices.Collect(maps.Keys(s.tokens))
	byLen := map[int]map[string]bool{}
	for p := range s.passwords {
		if byLen[len(p)] == nil {
			byLen[len(p)] = map[string]bool{}
		}
		byLen[len(p)][p] = true
	}
	s.mu.Unlock()

	var leaks []leak
	found := func(at int, what string) {
		leaks = append(leaks, leak{Where: where, What: what, Line: 1 + bytes.Count(data[:at], []byte{'\n'})})
	}
	for _, v := range slices.Sorted(maps.Keys(fixed)) {
		if i := bytes.Index(data, []byte(v)); i >= 0 {
			found(i, fixed[v])
		}
	}
	for _, t := range tokens {
		if i := bytes.Index(data, []byte(t)); i >= 0 {
			found(i, "an access token issued by the emulator")
			break
		}
	}
	if i := bytes.Index(data, []byte("eyJ")); i >= 0 {
		found(i, `a JWT ("eyJ…")`)
	}
	if i := bytes.Index(bytes.ToLower(data), []byte(`"password"`)); i >= 0 {
		found(i, `a "password" key`)
	}
	for _, n := range slices.Sorted(maps.Keys(byLen)) {
		set := byLen[n]
		for i := 0; i+n <= len(data); i++ {
			if set[string(data[i:i+n])] {
				found(i, "a generated password sent to Auth0")
				break
			}
		}
	}
	return leaks
}

// jsonLines counts the lines of a log and those that are not JSON objects
// (a panic's stack trace, a stray print), returning the first few of those.
func jsonLines(data []byte) (lines, bad int, samples []string) {
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		lines++
		if line[0] != '{' || !json.Valid(line) {
			bad++
			if len(samples) < 3 {
				samples = append(samples, truncate(string(line), 160))
			}
		}
	}
	return lines, bad, samples
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + fmt.Sprintf("… (%d chars)", len(r))
}
