package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Query is a parsed search query of GET /api/v2/users?q=, the subset of
// Lucene syntax that Auth0's v3 search engine documents and syncd uses:
//
//	field:value  field:"quoted value"  field:val*  app_metadata.x:value
//	_exists_:field  field:[a TO b]  field:{a TO *}  field:(a OR b)
//	a AND b  a OR b  a b (= OR)  NOT a  -a  (grouping)
//
// Matching follows Auth0: email, name, given_name, family_name and nickname
// compare case-insensitively, other fields exactly; a value matches a field
// holding an array if it matches one element; null, empty objects and empty
// arrays are not indexed (so _exists_ is false for them).
type Query struct {
	root qnode
}

// ParseQuery parses q; the error says where the syntax is wrong.
func ParseQuery(q string) (*Query, error) {
	p := &qparser{src: q}
	p.skipSpace()
	if p.eof() {
		return nil, errors.New("empty query")
	}
	n, err := p.parseOr("", 0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if !p.eof() {
		return nil, p.errorf("unexpected %q", p.rest())
	}
	return &Query{root: n}, nil
}

// Match says whether a user document (as GET /api/v2/users/{id} renders it)
// matches the query.
func (q *Query) Match(doc map[string]any) bool { return q.root.match(doc) }

// String returns the query in a canonical form that ParseQuery reads back to
// the same query.
func (q *Query) String() string { return q.root.String() }

type qnode interface {
	match(doc map[string]any) bool
	String() string
}

type orNode []qnode

func (n orNode) match(doc map[string]any) bool {
	for _, c := range n {
		if c.match(doc) {
			return true
		}
	}
	return false
}

func (n orNode) String() string { return joinNodes(n, " OR ") }

type andNode []qnode

func (n andNode) match(doc map[string]any) bool {
	for _, c := range n {
		if !c.match(doc) {
			return false
		}
	}
	return true
}

func (n andNode) String() string { return joinNodes(n, " AND ") }

func joinNodes(ns []qnode, sep string) string {
	parts := make([]string, len(ns))
	for i, c := range ns {
		parts[i] = c.String()
	}
	return "(" + strings.Join(parts, sep) + ")"
}

type notNode struct{ n qnode }

func (n notNode) match(doc map[string]any) bool { return !n.n.match(doc) }
func (n notNode) String() string                { return "NOT " + n.n.String() }

// termKind is how a term compares.
type termKind int

const (
	termExact termKind = iota // a bare word or a quoted phrase
	termWildcard
	termRange
	termExists
)

type termNode struct {
	field  string // "" = the default fields
	kind   termKind
	value  string
	lo, hi string // range bounds; "*" = open
	loIncl bool
	hiIncl bool
}

// defaultFields are searched by a term with no field.
var defaultFields = []string{"email", "name", "nickname", "given_name", "family_name", "username", "user_id"}

// foldedFields compare case-insensitively.
var foldedFields = map[string]bool{"email": true, "name": true, "given_name": true, "family_name": true, "nickname": true}

func (t *termNode) match(doc map[string]any) bool {
	if t.kind == termExists {
		vals, _ := lookup(doc, t.value)
		return len(vals) > 0
	}
	fields := []string{t.field}
	if t.field == "" {
		fields = defaultFields
	}
	for _, f := range fields {
		vals, _ := lookup(doc, f)
		for _, v := range vals {
			s, ok := scalarString(v)
			if !ok {
				continue
			}
			if t.matchValue(f, s, v) {
				return true
			}
		}
	}
	return false
}

func (t *termNode) matchValue(field, s string, raw any) bool {
	want := t.value
	if foldedFields[field] {
		s, want = strings.ToLower(s), strings.ToLower(want)
	}
	switch t.kind {
	case termWildcard:
		return globMatch(want, s)
	case termRange:
		lo, hi := t.lo, t.hi
		if foldedFields[field] {
			lo, hi = strings.ToLower(lo), strings.ToLower(hi)
		}
		return inRange(s, raw, lo, hi, t.loIncl, t.hiIncl)
	}
	return s == want
}

func inRange(s string, raw any, lo, hi string, loIncl, hiIncl bool) bool {
	cmpTo := func(bound string) (int, bool) {
		if x, ok := number(raw); ok {
			if b, err := strconv.ParseFloat(bound, 64); err == nil {
				switch {
				case x < b:
					return -1, true
				case x > b:
					return 1, true
				}
				return 0, true
			}
		}
		return strings.Compare(s, bound), true
	}
	if lo != "*" {
		c, _ := cmpTo(lo)
		if c < 0 || (c == 0 && !loIncl) {
			return false
		}
	}
	if hi != "*" {
		c, _ := cmpTo(hi)
		if c > 0 || (c == 0 && !hiIncl) {
			return false
		}
	}
	return true
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func (t *termNode) String() string {
	prefix := ""
	if t.field != "" {
		prefix = escapeWord(t.field) + ":"
	}
	switch t.kind {
	case termExists:
		return "_exists_:" + escapeWord(t.value)
	case termWildcard:
		return prefix + escapeWildcard(t.value)
	case termRange:
		open, closing := "{", "}"
		if t.loIncl {
			open = "["
		}
		if t.hiIncl {
			closing = "]"
		}
		return prefix + open + quoteBound(t.lo) + " TO " + quoteBound(t.hi) + closing
	}
	return prefix + quote(t.value)
}

func quoteBound(b string) string {
	if b == "*" {
		return "*"
	}
	return quote(b)
}

// quote writes a quoted value: only " and \ are escaped.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// special are the characters a bare word must escape.
const special = `\+-!():^[]"{}~*?|&/ ` + "\t\n\r"

func escapeWord(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(special, c) || unicode.IsSpace(c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// escapeWildcard writes a wildcard value: its stars are wildcards and stay
// bare; every other special character is escaped. A value made only of
// escapes cannot start a keyword by accident because keywords are bare.
func escapeWildcard(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '*' || c == '?':
		case strings.ContainsRune(special, c) || unicode.IsSpace(c):
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// globMatch matches s against a pattern of * (any run) and ? (one character).
func globMatch(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || (p[pi] != '*' && p[pi] == str[si])):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// lookup returns the indexed scalar values at a dotted path of doc (arrays
// fan out), and whether the path exists at all.
func lookup(doc map[string]any, path string) ([]any, bool) {
	cur := []any{doc}
	for seg := range strings.SplitSeq(path, ".") {
		var next []any
		for _, c := range cur {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			v, ok := m[seg]
			if !ok {
				continue
			}
			if arr, ok := v.([]any); ok {
				next = append(next, arr...)
			} else {
				next = append(next, v)
			}
		}
		if len(next) == 0 {
			return nil, false
		}
		cur = next
	}
	var out []any
	for _, v := range cur {
		switch x := v.(type) {
		case nil:
		case map[string]any:
			if len(x) > 0 {
				out = append(out, x)
			}
		case []any:
			if len(x) > 0 {
				out = append(out, x)
			}
		default:
			out = append(out, v)
		}
	}
	return out, true
}

// scalarString is how a scalar value is indexed.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// maxQueryDepth bounds nesting, so that a hostile query cannot exhaust the stack.
const maxQueryDepth = 64

type qparser struct {
	src string
	pos int
}

func (p *qparser) eof() bool    { return p.pos >= len(p.src) }
func (p *qparser) rest() string { return p.src[p.pos:] }

func (p *qparser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid query at position %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *qparser) skipSpace() {
	for !p.eof() {
		c, n := utf8.DecodeRuneInString(p.rest())
		if !unicode.IsSpace(c) {
			return
		}
		p.pos += n
	}
}

// keyword says whether a bare keyword (AND, OR, NOT, &&, ||) is next.
func (p *qparser) keyword(kw string) bool {
	if !strings.HasPrefix(p.rest(), kw) {
		return false
	}
	after := p.src[p.pos+len(kw):]
	if kw == "&&" || kw == "||" {
		return true
	}
	if after == "" {
		return true
	}
	c, _ := utf8.DecodeRuneInString(after)
	return unicode.IsSpace(c) || c == '(' || c == '"'
}

func (p *qparser) parseOr(field string, depth int) (qnode, error) {
	if depth > maxQueryDepth {
		return nil, p.errorf("nested too deeply")
	}
	var terms []qnode
	for {
		n, err := p.parseAnd(field, depth)
		if err != nil {
			return nil, err
		}
		terms = append(terms, n)
		p.skipSpace()
		switch {
		case p.keyword("OR"):
			p.pos += 2
		case p.keyword("||"):
			p.pos += 2
		case p.eof() || p.src[p.pos] == ')':
			if len(terms) == 1 {
				return terms[0], nil
			}
			return orNode(terms), nil
		default:
			// juxtaposition: Lucene's default operator, OR
		}
	}
}

func (p *qparser) parseAnd(field string, depth int) (qnode, error) {
	var terms []qnode
	for {
		n, err := p.parseUnary(field, depth)
		if err != nil {
			return nil, err
		}
		terms = append(terms, n)
		p.skipSpace()
		switch {
		case p.keyword("AND"):
			p.pos += 3
		case p.keyword("&&"):
			p.pos += 2
		default:
			if len(terms) == 1 {
				return terms[0], nil
			}
			return andNode(terms), nil
		}
	}
}

func (p *qparser) parseUnary(field string, depth int) (qnode, error) {
	if depth > maxQueryDepth {
		return nil, p.errorf("nested too deeply")
	}
	p.skipSpace()
	if p.eof() {
		return nil, p.errorf("unexpected end of query")
	}
	switch {
	case p.keyword("NOT"):
		p.pos += 3
		n, err := p.parseUnary(field, depth+1)
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	case p.src[p.pos] == '-' || p.src[p.pos] == '!':
		p.pos++
		n, err := p.parseUnary(field, depth+1)
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	case p.src[p.pos] == '+':
		p.pos++
		return p.parseUnary(field, depth+1)
	case p.src[p.pos] == '(':
		p.pos++
		n, err := p.parseOr(field, depth+1)
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.eof() || p.src[p.pos] != ')' {
			return nil, p.errorf("missing )")
		}
		p.pos++
		return n, nil
	case p.src[p.pos] == ')':
		return nil, p.errorf("unexpected )")
	}
	return p.parseTerm(field, depth)
}

func (p *qparser) parseTerm(field string, depth int) (qnode, error) {
	if p.src[p.pos] == '"' || p.src[p.pos] == '[' || p.src[p.pos] == '{' {
		return p.parseValue(field)
	}
	start := p.pos
	word, wild, err := p.word()
	if err != nil {
		return nil, err
	}
	if !p.eof() && p.src[p.pos] == ':' {
		if wild {
			return nil, p.errorf("wildcard in field name %q", p.src[start:p.pos])
		}
		if field != "" {
			return nil, p.errorf("field %q inside a group of field %q", word, field)
		}
		p.pos++
		if word == "" {
			return nil, p.errorf("empty field name")
		}
		if word == "_exists_" {
			name, wild, err := p.word()
			if err != nil {
				return nil, err
			}
			if name == "" || wild {
				return nil, p.errorf("_exists_ needs a field name")
			}
			return &termNode{kind: termExists, value: name}, nil
		}
		if p.eof() {
			return nil, p.errorf("missing value for field %q", word)
		}
		if p.src[p.pos] == '(' {
			p.pos++
			n, err := p.parseOr(word, depth+1)
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if p.eof() || p.src[p.pos] != ')' {
				return nil, p.errorf("missing )")
			}
			p.pos++
			return n, nil
		}
		return p.parseValue(word)
	}
	if word == "" {
		return nil, p.errorf("unexpected %q", p.rest())
	}
	return p.wordTerm(field, word, wild), nil
}

func (p *qparser) wordTerm(field, word string, wild bool) *termNode {
	if wild {
		return &termNode{field: field, kind: termWildcard, value: word}
	}
	return &termNode{field: field, kind: termExact, value: word}
}

// parseValue reads the value of field: a quoted phrase, a range or a word.
func (p *qparser) parseValue(field string) (qnode, error) {
	switch p.src[p.pos] {
	case '"':
		s, err := p.quoted()
		if err != nil {
			return nil, err
		}
		return &termNode{field: field, kind: termExact, value: s}, nil
	case '[', '{':
		return p.rangeTerm(field)
	}
	word, wild, err := p.word()
	if err != nil {
		return nil, err
	}
	if word == "" {
		return nil, p.errorf("missing value for field %q", field)
	}
	return p.wordTerm(field, word, wild), nil
}

func (p *qparser) rangeTerm(field string) (qnode, error) {
	t := &termNode{field: field, kind: termRange, loIncl: p.src[p.pos] == '['}
	p.pos++
	bound := func() (string, error) {
		p.skipSpace()
		if p.eof() {
			return "", p.errorf("unterminated range")
		}
		if p.src[p.pos] == '"' {
			return p.quoted()
		}
		w, wild, err := p.word()
		if err != nil {
			return "", err
		}
		if w == "" || (wild && w != "*") {
			return "", p.errorf("bad range bound")
		}
		return w, nil
	}
	var err error
	if t.lo, err = bound(); err != nil {
		return nil, err
	}
	p.skipSpace()
	if !strings.HasPrefix(p.rest(), "TO") {
		return nil, p.errorf("range needs TO")
	}
	p.pos += 2
	if t.hi, err = bound(); err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.eof() || (p.src[p.pos] != ']' && p.src[p.pos] != '}') {
		return nil, p.errorf("unterminated range")
	}
	t.hiIncl = p.src[p.pos] == ']'
	p.pos++
	return t, nil
}

// quoted reads a "…" string with backslash escapes.
func (p *qparser) quoted() (string, error) {
	p.pos++ // "
	var b strings.Builder
	for !p.eof() {
		c, n := utf8.DecodeRuneInString(p.rest())
		p.pos += n
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.eof() {
				return "", p.errorf("unterminated escape")
			}
			c, n = utf8.DecodeRuneInString(p.rest())
			p.pos += n
		}
		b.WriteRune(c)
	}
	return "", p.errorf("unterminated quoted value")
}

// word reads a bare word up to a space or a special character; it says
// whether it holds an unescaped wildcard (* or ?).
func (p *qparser) word() (string, bool, error) {
	var b strings.Builder
	wild := false
	for !p.eof() {
		c, n := utf8.DecodeRuneInString(p.rest())
		if unicode.IsSpace(c) || strings.ContainsRune(`():"[]{}`, c) {
			break
		}
		if c == '\\' {
			p.pos += n
			if p.eof() {
				return "", false, p.errorf("unterminated escape")
			}
			c, n = utf8.DecodeRuneInString(p.rest())
			p.pos += n
			if c == '*' || c == '?' {
				return "", false, p.errorf("escaped wildcards are not supported")
			}
			b.WriteRune(c)
			continue
		}
		if c == '*' || c == '?' {
			wild = true
		}
		b.WriteRune(c)
		p.pos += n
	}
	return b.String(), wild, nil
}
