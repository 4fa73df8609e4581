package app

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrInvalidPhone is returned for a phone number that is not a valid
// recipient.
var ErrInvalidPhone = errors.New("invalid phone number")

// phoneSeparators removes the spaces and dashes people write in numbers.
var phoneSeparators = strings.NewReplacer(" ", "", "-", "")

// PhoneNormalizer turns the accepted spellings of a phone number into the
// stored form: the country code followed by the national number, digits only.
type PhoneNormalizer struct {
	countryCode string
	pattern     string         // the configured local pattern, for messages
	local       *regexp.Regexp // pattern anchored to match whole strings
}

// NewPhoneNormalizer returns a normalizer for numbers of the given country
// code whose national part matches localPattern as a whole. The pattern is
// anchored at both ends even where the configuration omits ^ and $.
func NewPhoneNormalizer(c PhoneConfig) (*PhoneNormalizer, error) {
	re, err := regexp.Compile(`^(?:` + c.LocalPattern + `)$`)
	if err != nil {
		return nil, fmt.Errorf("phone: local pattern: %w", err)
	}
	return &PhoneNormalizer{countryCode: c.CountryCode, pattern: c.LocalPattern, local: re}, nil
}

// Normalize accepts the national number alone, or prefixed with the
// country code, "+" and the country code, or "00" and the country code
// (spaces and dashes are ignored), and returns country code and national
// number as digits. Any other input returns an error wrapping
// ErrInvalidPhone that says what was expected.
func (p *PhoneNormalizer) Normalize(s string) (string, error) {
	n := phoneSeparators.Replace(strings.TrimSpace(s))
	switch {
	case strings.HasPrefix(n, "+"+p.countryCode):
		n = n[1+len(p.countryCode):]
	case strings.HasPrefix(n, "00"+p.countryCode):
		n = n[2+len(p.countryCode):]
	case strings.HasPrefix(n, p.countryCode) && !p.local.MatchString(n):
		n = n[len(p.countryCode):]
	}
	if !p.local.MatchString(n) || !allDigits(n) {
		return "", fmt.Errorf("%w: %q is not a national number matching %s, optionally "+
			"prefixed with %s, +%s or 00%s", ErrInvalidPhone, s, p.pattern, p.countryCode,
			p.countryCode, p.countryCode)
	}
	return p.countryCode + n, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
