package signalr

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// collectRecords runs ReadRecords over data, reading one byte at a time when oneByte is
// set, and returns the records it saw.
func collectRecords(t *testing.T, data []byte, maxSize int, oneByte bool) ([]string, error) {
	t.Helper()
	var r io.Reader = bytes.NewReader(data)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	var records []string
	err := ReadRecords(r, maxSize, func(record []byte) error {
		records = append(records, string(record))
		return nil
	})
	return records, err
}

func TestSplitRecord(t *testing.T) {
	record, rest, ok := SplitRecord([]byte("{}\x1e{\"type\":6}\x1e"))
	require.True(t, ok)
	require.Equal(t, "{}", string(record))
	require.Equal(t, "{\"type\":6}\x1e", string(rest))

	_, _, ok = SplitRecord([]byte("{}"))
	require.False(t, ok)
}

func TestReadRecordsSplitsAtSeparators(t *testing.T) {
	for _, oneByte := range []bool{false, true} {
		records, err := collectRecords(t, []byte("a\x1ebb\x1e\x1eccc\x1e"), 16, oneByte)
		require.NoError(t, err)
		require.Equal(t, []string{"a", "bb", "", "ccc"}, records)
	}
}

func TestReadRecordsEmptyInput(t *testing.T) {
	records, err := collectRecords(t, nil, 16, false)
	require.NoError(t, err)
	require.Empty(t, records)
}

func TestReadRecordsIncomplete(t *testing.T) {
	records, err := collectRecords(t, []byte("a\x1ebc"), 16, false)
	require.ErrorIs(t, err, ErrIncompleteRecord)
	require.Equal(t, []string{"a"}, records)
}

func TestReadRecordsSizeLimit(t *testing.T) {
	exact := strings.Repeat("x", 64)
	for _, oneByte := range []bool{false, true} {
		records, err := collectRecords(t, []byte(exact+"\x1e"), 64, oneByte)
		require.NoError(t, err)
		require.Equal(t, []string{exact}, records)

		_, err = collectRecords(t, []byte(exact+"y\x1e"), 64, oneByte)
		require.ErrorIs(t, err, ErrMessageTooLarge)
	}
}

func TestReadRecordsLargeRecordsGrowBuffer(t *testing.T) {
	big := strings.Repeat("z", 3*scanBufferSize)
	records, err := collectRecords(t, []byte(big+"\x1eq\x1e"), 4*scanBufferSize, false)
	require.NoError(t, err)
	require.Equal(t, []string{big, "q"}, records)
}

func TestReadRecordsStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := ReadRecords(strings.NewReader("a\x1eb\x1e"), 16, func([]byte) error {
		calls++
		return stop
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, calls)
}

func TestReadRecordsPassesReadError(t *testing.T) {
	boom := errors.New("boom")
	err := ReadRecords(iotest.ErrReader(boom), 16, func([]byte) error { return nil })
	require.ErrorIs(t, err, boom)
}
