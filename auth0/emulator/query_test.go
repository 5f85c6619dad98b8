package emulator_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

var queryDoc = func() map[string]any {
	var d map[string]any
	if err := json.Unmarshal([]byte(`{
		"user_id":"auth0|0123456789abcdef01234567","email":"jane.doe@example.com","name":"Jane Doe","blocked":false,
		"identities":[{"connection":"Username-Password-Authentication","provider":"auth0"}],
		"app_metadata":{"employee_id":42,"department":"Heat Press","tags":["x","y"],"nothing":null,"empty":[]}}`), &d); err != nil {
		panic(err)
	}
	return d
}()

func TestQueryMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		q    string
		want bool
	}{
		{`email:jane.doe@example.com`, true},
		{`email:"JANE.DOE@example.com"`, true},
		{`name:jane*`, true},
		{`name:*doe`, true},
		{`name:j?ne*`, true},
		{`name:"Jane"`, false},
		{`app_metadata.employee_id:42`, true},
		{`app_metadata.employee_id:"42"`, true},
		{`app_metadata.employee_id:4`, false},
		{`app_metadata.department:"Heat Press"`, true},
		{`app_metadata.department:Heat`, false},
		{`app_metadata.tags:y`, true},
		{`_exists_:app_metadata.tags`, true},
		{`_exists_:app_metadata.nothing`, false},
		{`_exists_:app_metadata.empty`, false},
		{`_exists_:app_metadata.missing`, false},
		{`blocked:false`, true},
		{`identities.connection:"Username-Password-Authentication"`, true},
		{`jane.doe@example.com`, true}, // no field: the default fields
		{`"Jane Doe"`, true},
		{`nobody`, false},
		{`email:x@y.z OR app_metadata.employee_id:42`, true},
		{`email:x@y.z || app_metadata.employee_id:42`, true},
		{`email:x@y.z AND app_metadata.employee_id:42`, false},
		{`email:jane.doe@example.com && app_metadata.employee_id:42`, true},
		{`NOT email:x@y.z`, true},
		{`!email:jane.doe@example.com`, false},
		{`-email:jane.doe@example.com OR blocked:false`, true},
		{`+email:jane.doe@example.com`, true},
		{`(email:x@y.z OR name:"jane doe") AND NOT blocked:true`, true},
		{`app_metadata.employee_id:(1 OR 42)`, true},
		{`app_metadata.employee_id:[40 TO 42]`, true},
		{`app_metadata.employee_id:[40 TO 42}`, false},
		{`app_metadata.employee_id:{41 TO *}`, true},
		{`app_metadata.employee_id:[* TO 41]`, false},
		// numeric, not string, order: "42" sorts before "5" and between "100" and "500"
		{`app_metadata.employee_id:[5 TO 100]`, true},
		{`app_metadata.employee_id:[100 TO 500]`, false},
		{`name:[a TO k]`, true},
		{`user_id:auth0\|0123456789abcdef01234567`, true},
		{`app_metadata.department:Heat\ Press`, true},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			q, err := emulator.ParseQuery(tt.q)
			require.NoError(t, err)
			require.Equal(t, tt.want, q.Match(queryDoc), "canonical form: %s", q)
			again, err := emulator.ParseQuery(q.String())
			require.NoError(t, err, q.String())
			require.Equal(t, q.String(), again.String())
			require.Equal(t, tt.want, again.Match(queryDoc))
		})
	}
}

func TestQuerySyntaxErrors(t *testing.T) {
	t.Parallel()
	for _, q := range []string{``, `   `, `email:`, `email:"open`, `(a OR b`, `a OR`, `a AND`, `NOT`, `)`, `:x`, `_exists_:`, `a:[1 TO`, `a:[1 2]`, `f*o:x`, `a:(b:c)`, `x\`, `a:b\*`} {
		_, err := emulator.ParseQuery(q)
		require.Error(t, err, q)
	}
	deep := ""
	for range 100 {
		deep += "("
	}
	_, err := emulator.ParseQuery(deep + "a" + deep)
	require.ErrorContains(t, err, "nested too deeply")
}

// FuzzQuery: the parser never panics, a query it accepts prints in a
// canonical form that parses back to itself and matches the same way.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{
		`email:"jane.doe@example.com"`, `app_metadata.employee_id:42`, `_exists_:app_metadata.created_by`,
		`a AND b OR c`, `NOT (a:b OR -c:d)`, `name:jan*`, `x:[1 TO 5}`, `x:{* TO "z"]`, `f:(a b c)`,
		`"quoted \" value"`, `a\:b:c`, `&& || !`, `((((a))))`, `a:b\ c`, `ü:ñ`, "a:\"\x00\"", `email:*`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := emulator.ParseQuery(s)
		if err != nil {
			return
		}
		canon := q.String()
		again, err := emulator.ParseQuery(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form is not stable: %q → %q", canon, again.String())
		}
		if q.Match(queryDoc) != again.Match(queryDoc) {
			t.Fatalf("%q and its canonical form %q match differently", s, canon)
		}
	})
}

// TestQueryNumericOrderWithJSONNumbers: the emulator keeps stored metadata as
// json.Number (its decoder uses UseNumber); ranges compare those as numbers.
func TestQueryNumericOrderWithJSONNumbers(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(`{"app_metadata":{"employee_id":42}}`))
	dec.UseNumber()
	var doc map[string]any
	require.NoError(t, dec.Decode(&doc))
	for q, want := range map[string]bool{
		`app_metadata.employee_id:[5 TO 100]`:   true,
		`app_metadata.employee_id:[100 TO 500]`: false,
		`app_metadata.employee_id:42`:           true,
	} {
		parsed, err := emulator.ParseQuery(q)
		require.NoError(t, err)
		require.Equal(t, want, parsed.Match(doc), q)
	}
}
