package emulator

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServerCloseTwice(t *testing.T) {
	t.Parallel()
	s, err := Listen("127.0.0.1:0", Options{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "a second Close returns at once")
}
