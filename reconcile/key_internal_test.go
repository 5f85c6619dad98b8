package reconcile

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestBulkUserIDs(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"42":                                   "syncd-emp-42",
		"3f2a0c5e-8f7b-4c1d-9e2a-0123456789ab": "syncd-emp-k-3f2a0c5e-8f7b-4c1d-9e2a-0123456789ab",
		"E-00042":                              "syncd-emp-k-E-00042",
		"HR/7 #1":                              "syncd-emp-x-48522f37202331",
		"-5":                                   "syncd-emp-k--5",
	} {
		require.Equal(t, want, BulkUserID(key), "key %q", key)
	}
	valid := regexp.MustCompile(`^syncd-emp-[A-Za-z0-9_-]+$`)
	rapid.Check(t, func(t *rapid.T) {
		a := rapid.String().Draw(t, "a")
		b := rapid.String().Draw(t, "b")
		if a == "" || b == "" {
			return
		}
		ida, idb := BulkUserID(a), BulkUserID(b)
		if !valid.MatchString(ida) {
			t.Fatalf("%q gives %q: not a plain user id", a, ida)
		}
		if (ida == idb) != (a == b) {
			t.Fatalf("%q and %q give %q and %q", a, b, ida, idb)
		}
		back, ok := employeeOfImportUser(map[string]any{"user_id": "auth0|" + ida})
		if !ok || back != a {
			t.Fatalf("%q → %q → %q, %v", a, ida, back, ok)
		}
	})
}

func TestKeyOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    any
		want string
		ok   bool
	}{
		{float64(42), "42", true},
		{json.Number("42"), "42", true},
		{"E-00042", "E-00042", true},
		{"42", "42", true},
		{float64(1.5), "", false},
		{nil, "", false},
		{"", "", false},
		{map[string]any{}, "", false},
	} {
		got, ok := KeyOf(tc.v)
		require.Equal(t, tc.ok, ok, "%#v", tc.v)
		require.Equal(t, tc.want, got, "%#v", tc.v)
	}
	require.Negative(t, CompareKeys("9", "10"), "integers by value")
	require.Negative(t, CompareKeys("E-10", "E-9"), "text by text")
}

func TestSearchKeyQuery(t *testing.T) {
	t.Parallel()
	require.Equal(t, `app_metadata.employee_id:42`, searchKeyQuery(&Employee{ID: "42", IDValue: json.RawMessage(`42`)}))
	require.Equal(t, `app_metadata.employee_id:"E-00042"`, searchKeyQuery(&Employee{ID: "E-00042", IDValue: json.RawMessage(`"E-00042"`)}))
	require.Equal(t, `app_metadata.employee_id:"00042"`, searchKeyQuery(&Employee{ID: "00042", IDValue: json.RawMessage(`"00042"`)}), "a text key of digits stays a string")
}
