package reconcile_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/reconcile"
)

// benchEmployees is the table size of the mapping benchmarks.
const benchEmployees = 10_000

// newMappingBench is a database with benchEmployees synced rows.
func newMappingBench(b *testing.B) *mappingBundle {
	b.Helper()
	m := newMappingBundle(b)
	m.exec(`INSERT INTO employees (name, email, department, phone_number)
		SELECT 'E' || i, 'e' || i || '@example.com', 'Dept ' || (i % 20), '+1555' || i FROM generate_series(1, $1) i`, benchEmployees)
	m.settle()
	return m
}

// The mapping sweep over 10,000 synced rows none of which changed: what
// one sweep costs the database every --mapping-sweep-interval.
func BenchmarkMappingSweepUnchanged(b *testing.B) {
	m := newMappingBench(b)
	b.ResetTimer()
	for range b.N {
		n, err := reconcile.MarkChanged(m.ctx, m.pool)
		require.NoError(b, err)
		require.Zero(b, n)
	}
	b.ReportMetric(float64(benchEmployees)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// `syncd mapping apply` of a view that changes 100 of 10,000 synced rows:
// the contract, the triggers and the one statement that marks the 100.
func BenchmarkMappingApply100Of10000(b *testing.B) {
	m := newMappingBench(b)
	mapping := func(suffix string) string {
		return view("CASE WHEN e.id % 100 = 0 THEN e.name || '"+suffix+"' ELSE e.name END", "NOT e.active",
			`jsonb_build_object('department', e.department)`, `jsonb_build_object('phone', e.phone_number)`)
	}
	_, err := m.apply(mapping("?"))
	require.NoError(b, err)
	m.settle()
	b.ResetTimer()
	for i := range b.N {
		applied, err := m.apply(mapping([]string{"!", "?"}[i%2]))
		require.NoError(b, err)
		require.EqualValues(b, benchEmployees/100, applied.Marked)
		b.StopTimer()
		m.settle()
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/apply")
}

// `syncd mapping check` over 10,000 rows: the contract and a row pass
// (syncd_desired_of and the Go validation of every row).
func BenchmarkMappingCheck(b *testing.B) {
	m := newMappingBench(b)
	b.ResetTimer()
	for range b.N {
		rep, err := reconcile.CheckMapping(m.ctx, m.pool, m.cfg)
		require.NoError(b, err)
		require.Equal(b, benchEmployees, rep.Rows)
	}
	b.ReportMetric(float64(benchEmployees)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
