package app

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func defaultPhones(t testing.TB) *PhoneNormalizer {
	t.Helper()
	cfg := newTestConfig(t)
	p, err := NewPhoneNormalizer(cfg.Phone)
	require.NoError(t, err)
	return p
}

func TestNormalizePhoneAccepted(t *testing.T) {
	phones := defaultPhones(t)
	cases := map[string]string{
		"775265496":          "967775265496",
		"967775265496":       "967775265496",
		"+967775265496":      "967775265496",
		"00967775265496":     "967775265496",
		" +967 775-265-496 ": "967775265496",
		"785265496":          "967785265496",
		"705265496":          "967705265496",
		"735265496":          "967735265496",
		"715265496":          "967715265496",
	}
	for in, want := range cases {
		t.Run(in, func(t *testing.T) {
			got, err := phones.Normalize(in)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

func TestNormalizePhoneRejected(t *testing.T) {
	phones := defaultPhones(t)
	for _, in := range []string{
		"", "77526549", "7752654960", "755265496", "+775265496", "00775265496",
		"966775265496", "+966775265496", "0967775265496", "+9677752654961",
		"77526549a", "７７５２６５４９６", "775265496\x00", "967",
		"+967+967775265496", "967967775265496",
	} {
		t.Run(in, func(t *testing.T) {
			_, err := phones.Normalize(in)
			require.ErrorIs(t, err, ErrInvalidPhone)
		})
	}
}

func TestNormalizePhoneFromConfig(t *testing.T) {
	phones, err := NewPhoneNormalizer(PhoneConfig{CountryCode: "1", LocalPattern: `[2-9]\d{9}`})
	require.NoError(t, err)
	cases := map[string]string{
		"2025550123":    "12025550123",
		"12025550123":   "12025550123",
		"+12025550123":  "12025550123",
		"0012025550123": "12025550123",
	}
	for in, want := range cases {
		got, err := phones.Normalize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	// The pattern has no anchors, but it must still match the whole
	// national number.
	for _, in := range []string{"20255501234", "x2025550123", "+120255501239"} {
		_, err := phones.Normalize(in)
		require.ErrorIs(t, err, ErrInvalidPhone, in)
	}
}

func TestNormalizePhoneErrorNamesPattern(t *testing.T) {
	phones := defaultPhones(t)
	_, err := phones.Normalize("12345")
	require.ErrorContains(t, err, `"12345"`)
	require.ErrorContains(t, err, `^(77|78|70|73|71)\d{7}$`)
	require.ErrorContains(t, err, "+967")
}
