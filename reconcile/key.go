package reconcile

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Employee keys are carried as the text PostgreSQL gives for the table's key
// (id::text): digits for smallint/integer/bigint keys, the canonical form for
// uuid keys, the value itself for text and varchar keys. SQL takes them as
// text parameters (the server parses them as the key's type) and arrays
// through syncd_keys($1) (migration 008).

// isIntegerKey reports whether key is the text of an integer.
func isIntegerKey(key string) bool {
	_, err := strconv.ParseInt(key, 10, 64)
	return err == nil
}

// KeyOf returns the key an app_metadata.employee_id value names (a JSON
// number for an integer key, a string otherwise), and false for a value that
// names no key (absent, null, an object, a fraction).
func KeyOf(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, x != ""
	case json.Number:
		if _, err := x.Int64(); err != nil {
			return "", false
		}
		return x.String(), true
	case float64:
		if x != float64(int64(x)) {
			return "", false
		}
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	}
	return "", false
}

// CompareKeys orders keys as the table does for integer keys (by value) and
// by text otherwise, for lists shown to people.
func CompareKeys(a, b string) int {
	ai, aerr := strconv.ParseInt(a, 10, 64)
	bi, berr := strconv.ParseInt(b, 10, 64)
	if aerr == nil && berr == nil {
		return cmp.Compare(ai, bi)
	}
	return strings.Compare(a, b)
}

// searchKeyQuery is the Auth0 user search that finds accounts whose
// app_metadata.employee_id is the key of e: a number for an integer key, a
// quoted string otherwise.
func searchKeyQuery(e *Employee) string {
	if v, ok := keyValue(e.ID, e.IDValue).(json.RawMessage); ok {
		return "app_metadata.employee_id:" + string(v) // a JSON number or string is also a Lucene term
	}
	return "app_metadata.employee_id:" + strconv.Quote(e.ID)
}

// safeKey reports whether key may stand in a bulk user id as it is: letters,
// digits, '-' and '_', at most 64 of them.
func safeKey(key string) bool {
	if key == "" || len(key) > 64 {
		return false
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// bulkKeyPart is the part of a bulk user id that names the employee: the
// digits of a non-negative integer key (as before keys of other types
// existed), "k-" and the key when it has only letters, digits, '-' and '_'
// (a uuid, an employee number such as E-00042), else "x-" and the key's
// bytes in hex. The three forms cannot meet, so distinct keys get distinct
// ids, and an id is always a valid Auth0 user id (and URL path segment).
func bulkKeyPart(key string) string {
	if key != "" && strings.Trim(key, "0123456789") == "" && len(key) <= 20 {
		return key
	}
	if safeKey(key) {
		return "k-" + key
	}
	return "x-" + hex.EncodeToString([]byte(key))
}

// bulkKeyFromPart is the key a bulkKeyPart names, and false for text that no
// key gives.
func bulkKeyFromPart(part string) (string, bool) {
	switch {
	case strings.HasPrefix(part, "k-"):
		k := part[2:]
		return k, safeKey(k)
	case strings.HasPrefix(part, "x-"):
		b, err := hex.DecodeString(part[2:])
		if err != nil || len(b) == 0 {
			return "", false
		}
		return string(b), true
	case part != "" && strings.Trim(part, "0123456789") == "":
		return part, true
	}
	return "", false
}

// ErrNotAKey matches a *NotAKeyError.
var ErrNotAKey = errors.New("not an employee key")

// NotAKeyError says that texts a person gave as employee ids are no key of
// the employees table's type (for example "abc" where the key is bigint).
type NotAKeyError struct {
	Texts   []string
	KeyType string // the key's type, as PostgreSQL names it
}

func (e *NotAKeyError) Error() string {
	quoted := make([]string, len(e.Texts))
	for i, t := range e.Texts {
		quoted[i] = strconv.Quote(t)
	}
	what := "is not an employee key"
	if len(quoted) > 1 {
		what = "are not employee keys"
	}
	return fmt.Sprintf("%s %s (the employees key is %s)", strings.Join(quoted, ", "), what, e.KeyType)
}

// Is makes errors.Is(err, ErrNotAKey) true.
func (e *NotAKeyError) Is(target error) bool { return target == ErrNotAKey }

// CheckKeys returns a *NotAKeyError naming those of texts that are no key of
// the employees table's type, nil if all are.
func CheckKeys(ctx context.Context, db Querier, texts []string) error {
	rows, err := db.Query(ctx, `SELECT given, pg_typeof(key)::text FROM syncd_parse_keys($1) WHERE key IS NULL`, texts)
	if err != nil {
		return fmt.Errorf("read employee keys: %w", err)
	}
	bad := &NotAKeyError{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t, &bad.KeyType); err != nil {
			rows.Close()
			return fmt.Errorf("read employee keys: %w", err)
		}
		bad.Texts = append(bad.Texts, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read employee keys: %w", err)
	}
	if len(bad.Texts) == 0 {
		return nil
	}
	return bad
}

// resolveKeys reads texts a person gave as employee keys in one statement:
// the keys of rows that exist (the table's text form, in the order given),
// and the texts that have no row. A text that is no key of the table's type
// is a *NotAKeyError, before anything about rows.
func resolveKeys(ctx context.Context, db Querier, texts []string) (keys, missing []string, err error) {
	rows, err := db.Query(ctx, `SELECT p.given, p.key IS NOT NULL, pg_typeof(p.key)::text, e.id::text
		FROM syncd_parse_keys($1) p LEFT JOIN employees e ON e.id = p.key`, texts)
	if err != nil {
		return nil, nil, fmt.Errorf("read employees: %w", err)
	}
	bad := &NotAKeyError{}
	for rows.Next() {
		var given string
		var parsed bool
		var key *string
		if err := rows.Scan(&given, &parsed, &bad.KeyType, &key); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read employees: %w", err)
		}
		switch {
		case !parsed:
			bad.Texts = append(bad.Texts, given)
		case key == nil:
			if !slices.Contains(missing, given) {
				missing = append(missing, given)
			}
		default:
			keys = append(keys, *key)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read employees: %w", err)
	}
	if len(bad.Texts) > 0 {
		return nil, nil, bad
	}
	return keys, missing, nil
}
