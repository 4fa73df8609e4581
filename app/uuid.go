package app

import (
	"errors"

	"github.com/google/uuid"

	"github.com/esh3artech/esh3artech/storage"
)

// parseUUID accepts only the canonical 36-character form, in either case.
func parseUUID(s string) (storage.ID, error) {
	if len(s) != 36 {
		return storage.ID{}, errors.New("not 36 characters")
	}
	return uuid.Parse(s)
}
