package breaker

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCauseOfStatus(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status int
		want   Cause
		record bool
	}{
		{0, CauseUnreachable, true},
		{200, CauseNone, true},
		{201, CauseNone, true},
		{204, CauseNone, true},
		{307, CauseNone, true},
		{400, CauseNone, true},
		{401, CauseCredentials, true},
		{403, CauseNone, false},
		{404, CauseNone, true},
		{409, CauseNone, true},
		{413, CauseNone, true},
		{429, CauseNone, false},
		{500, CauseServer, true},
		{502, CauseServer, true},
		{503, CauseServer, true},
	} {
		c, record := CauseOfStatus(tt.status)
		require.Equal(t, tt.want, c, "status %d", tt.status)
		require.Equal(t, tt.record, record, "status %d", tt.status)
	}
}

func TestCauseOfTokenFailure(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status int
		want   Cause
	}{
		{0, CauseUnreachable},
		{400, CauseCredentials},
		{401, CauseCredentials},
		{403, CauseCredentials},
		{404, CauseUnreachable},
		{307, CauseUnreachable},
		{429, CauseUnreachable},
		{500, CauseServer},
		{503, CauseServer},
	} {
		require.Equal(t, tt.want, CauseOfTokenFailure(tt.status), "status %d", tt.status)
	}
}

func TestCauseLabel(t *testing.T) {
	t.Parallel()
	for c, want := range map[Cause]string{CauseCredentials: "credentials", CauseUnreachable: "unreachable", CauseServer: "server", CauseConfiguration: "configuration",
		CauseNone: "none", Cause("something new"): "other"} {
		require.Equal(t, want, c.Label())
	}
}
