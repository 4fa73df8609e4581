package app

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/esh3artech/esh3artech/storage"
)

// Paging of GET /api/v1/dlq.
const (
	defaultDLQLimit = 100
	maxDLQLimit     = 1000
)

// dlqPage is the answer of GET /api/v1/dlq.
type dlqPage struct {
	Items      []messageView `json:"items"`
	NextCursor *string       `json:"nextCursor"`
}

// listDLQ returns dead-lettered messages, oldest first. A client sees its
// own; an admin client sees every client's, or one client's with ?client=.
func (a *API) listDLQ(c echo.Context) error {
	f, cursor, limit, err := a.dlqQuery(c)
	if err != nil {
		return a.fail(c, err)
	}
	msgs, next, err := a.delivery.ListDLQ(c.Request().Context(), f, cursor, limit)
	if err != nil {
		return a.fail(c, err)
	}
	page := dlqPage{Items: make([]messageView, 0, len(msgs))}
	for _, m := range msgs {
		page.Items = append(page.Items, viewOf(m))
	}
	if next != nil {
		s := base64.RawURLEncoding.EncodeToString(next)
		page.NextCursor = &s
	}
	return c.JSON(http.StatusOK, page)
}

func (a *API) dlqQuery(c echo.Context) (storage.DLQFilter, storage.DLQCursor, int, error) {
	p := principal(c)
	f := storage.DLQFilter{Client: c.QueryParam("client")}
	if !p.Admin {
		if f.Client != "" && f.Client != p.ClientID {
			return f, nil, 0, newAPIError(http.StatusForbidden, "forbidden",
				"Only admin clients may list other clients' messages; leave out client.")
		}
		f.Client = p.ClientID
	}
	var err error
	if f.From, err = parseTimeParam(c, "from"); err != nil {
		return f, nil, 0, err
	}
	if f.To, err = parseTimeParam(c, "to"); err != nil {
		return f, nil, 0, err
	}
	var cursor storage.DLQCursor
	if raw := c.QueryParam("cursor"); raw != "" {
		if cursor, err = base64.RawURLEncoding.DecodeString(raw); err != nil || len(cursor) == 0 {
			return f, nil, 0, validationError(FieldError{"cursor",
				"invalid; pass the nextCursor of the previous page unchanged"})
		}
	}
	limit := defaultDLQLimit
	if raw := c.QueryParam("limit"); raw != "" {
		if limit, err = strconv.Atoi(raw); err != nil || limit < 1 || limit > maxDLQLimit {
			return f, nil, 0, validationError(FieldError{"limit",
				fmt.Sprintf("%q is not a whole number from 1 to %d", raw, maxDLQLimit)})
		}
	}
	return f, cursor, limit, nil
}

func parseTimeParam(c echo.Context, name string) (time.Time, error) {
	raw := c.QueryParam(name)
	if raw == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, validationError(FieldError{name,
			fmt.Sprintf("%q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", raw)})
	}
	return t, nil
}

// requeueDLQ puts a dead-lettered message back into the queue with its
// attempts reset.
func (a *API) requeueDLQ(c echo.Context) error {
	id, err := parseID("id", c.Param("id"))
	if err != nil {
		return a.fail(c, err)
	}
	p := principal(c)
	notFound := newAPIError(http.StatusNotFound, "message_not_found",
		fmt.Sprintf("No message with id %s was sent by this client.", id))
	m, err := a.delivery.Message(c.Request().Context(), id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && m.CreatorID != p.ClientID && !p.Admin) {
		return a.fail(c, notFound)
	}
	if err != nil {
		return a.fail(c, err)
	}
	m, err = a.delivery.Requeue(c.Request().Context(), id)
	if errors.Is(err, storage.ErrNotInDLQ) {
		return a.fail(c, newAPIError(http.StatusConflict, "not_in_dlq",
			fmt.Sprintf("Message %s is not in the dead-letter queue, so it cannot be requeued.", id)))
	}
	if err != nil {
		return a.fail(c, err)
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/messages/"+id.String())
	return c.JSON(http.StatusAccepted, viewOf(m))
}
