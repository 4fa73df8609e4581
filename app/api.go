package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/router"
	"github.com/esh3artech/esh3artech/storage"
)

// API serves the REST routes for business clients.
type API struct {
	cfg      *Config
	store    *storage.Store
	auth     *Authenticator
	phones   *PhoneNormalizer
	delivery Delivery
	limits   *limiter
	metrics  *metrics
	reload   func() (changed, ignored []string, err error)
	log      *zap.Logger
}

// Delivery is the part of the router that the API drives.
type Delivery interface {
	// Notify wakes the router because the queue has new messages.
	Notify()
	// Requeue puts a dead-lettered message back into the queue, on
	// whichever node holds it.
	Requeue(ctx context.Context, id storage.ID) (*storage.Message, error)
	// Message returns a message by id from whichever node holds it.
	Message(ctx context.Context, id storage.ID) (*storage.Message, error)
	// ListDLQ lists dead-lettered messages across the cluster.
	ListDLQ(ctx context.Context, f storage.DLQFilter, after storage.DLQCursor, limit int) (
		[]*storage.Message, storage.DLQCursor, error)
}

const principalKey = "principal"

// Register mounts the API's routes on e.
func (a *API) Register(e *echo.Echo) {
	mw := []echo.MiddlewareFunc{a.metrics.observe, a.boundInFlight, a.authenticate}
	compat := authGroup{e.Group("/api/app/message"), mw}
	compat.POST("/send-one-way-message", a.compatSend)
	compat.POST("/ingestion-send-one-way-message", a.compatSend)
	compat.POST("/ingestion-batch-message", a.compatBatch)
	compat.GET("/message-by-id", a.compatGet)

	v1 := authGroup{e.Group("/api/v1"), mw}
	v1.POST("/messages", a.v1Send)
	v1.POST("/messages/batch", a.v1Batch)
	v1.GET("/messages/:id", a.v1Get)
	v1.GET("/dlq", a.listDLQ)
	v1.POST("/dlq/:id/requeue", a.requeueDLQ)
	v1.POST("/admin/reload", a.adminReload)
	v1.GET("/admin/limits", a.adminLimits)
}

// authGroup adds routes under a group's prefix with the metrics, in-flight
// bound and authentication middleware on each route. Middleware passed to
// echo.Group would instead register a catch-all route for the prefix. That
// route returns 404 rather than 405 for a wrong method on a known path, and
// 401 rather than 404 for an unknown path.
type authGroup struct {
	group      *echo.Group
	middleware []echo.MiddlewareFunc
}

func (g authGroup) GET(path string, h echo.HandlerFunc) {
	g.group.GET(path, h, g.middleware...)
}

func (g authGroup) POST(path string, h echo.HandlerFunc) {
	g.group.POST(path, h, g.middleware...)
}

// authenticate rejects requests without valid business credentials and
// stores the Principal of the others in the context.
func (a *API) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := a.auth.Business(c.Request())
		if err != nil {
			c.Response().Header().Set("WWW-Authenticate", `Bearer, ApiKey header="X-Api-Key"`)
			return writeAPIError(c, newAPIError(http.StatusUnauthorized, "unauthenticated",
				err.Error()+"."))
		}
		c.Set(principalKey, p)
		c.Response().Before(func() {
			a.limits.setHeaders(c.Response().Header(), p.ClientID, time.Now())
		})
		return next(c)
	}
}

func principal(c echo.Context) Principal {
	p, _ := c.Get(principalKey).(Principal)
	return p
}

// compatSend accepts one message on the previous service's routes.
func (a *API) compatSend(c echo.Context) error {
	body, drafts, err := a.readSend(c, false)
	if err != nil {
		return a.fail(c, err)
	}
	ids, replay, err := a.accept(c, body, drafts)
	if err != nil {
		return a.fail(c, err)
	}
	setReplayed(c, replay)
	return c.JSON(http.StatusOK, map[string]string{"id": ids[0].String()})
}

// v1Send accepts one message and responds 202 with its id and Location.
func (a *API) v1Send(c echo.Context) error {
	body, drafts, err := a.readSend(c, true)
	if err != nil {
		return a.fail(c, err)
	}
	ids, replay, err := a.accept(c, body, drafts)
	if err != nil {
		return a.fail(c, err)
	}
	setReplayed(c, replay)
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/messages/"+ids[0].String())
	return c.JSON(http.StatusAccepted, map[string]any{
		"id": ids[0].String(), "status": int(storage.StatusQueued),
	})
}

// readSend reads, decodes and validates the body of a single send. With
// strict set, as on the /api/v1 routes, unknown fields are rejected. Every
// error is an *APIError.
func (a *API) readSend(c echo.Context, strict bool) ([]byte, []draft, error) {
	body, err := readJSONBody(c, a.cfg.HTTP)
	if err != nil {
		return nil, nil, err
	}
	var req sendRequest
	if err := decodeJSON(body, &req, strict); err != nil {
		return nil, nil, err
	}
	d, errs := a.validateMessage("", "recipientPhoneNumber", req.RecipientPhoneNumber,
		req.MessageContent, req.Subject, req.Priority)
	if len(errs) > 0 {
		return nil, nil, validationError(errs...)
	}
	return body, []draft{d}, nil
}

// compatBatch accepts up to 500 messages, all or none, on the previous
// service's route.
func (a *API) compatBatch(c echo.Context) error {
	body, drafts, err := a.readCompatBatch(c)
	if err != nil {
		return a.fail(c, err)
	}
	_, replay, err := a.accept(c, body, drafts)
	if err != nil {
		return a.fail(c, err)
	}
	setReplayed(c, replay)
	return c.JSON(http.StatusOK, true)
}

// readCompatBatch reads, decodes and validates the body of the previous
// service's batch route. Every error is an *APIError.
func (a *API) readCompatBatch(c echo.Context) ([]byte, []draft, error) {
	body, err := readJSONBody(c, a.cfg.HTTP)
	if err != nil {
		return nil, nil, err
	}
	var req struct {
		BatchMessages []batchItem `json:"batchMessages"`
	}
	if err := decodeJSON(body, &req, false); err != nil {
		return nil, nil, err
	}
	drafts, err := a.validateBatch("batchMessages", len(req.BatchMessages), func(i int) (draft, []FieldError) {
		it := req.BatchMessages[i]
		return a.validateMessage(fmt.Sprintf("batchMessages[%d].", i), "mobileNumber",
			it.MobileNumber, it.MessageContent, it.Subject, nil)
	})
	if err != nil {
		return nil, nil, err
	}
	return body, drafts, nil
}

// v1Batch accepts up to 500 messages, all or none, and returns their ids in
// the order of the request.
func (a *API) v1Batch(c echo.Context) error {
	body, drafts, err := a.readV1Batch(c)
	if err != nil {
		return a.fail(c, err)
	}
	ids, replay, err := a.accept(c, body, drafts)
	if err != nil {
		return a.fail(c, err)
	}
	setReplayed(c, replay)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return c.JSON(http.StatusAccepted, map[string]any{"ids": out})
}

// readV1Batch reads, decodes and validates the body of the /api/v1 batch
// route. Every error is an *APIError.
func (a *API) readV1Batch(c echo.Context) ([]byte, []draft, error) {
	body, err := readJSONBody(c, a.cfg.HTTP)
	if err != nil {
		return nil, nil, err
	}
	var req struct {
		Messages []sendRequest `json:"messages"`
	}
	if err := decodeJSON(body, &req, true); err != nil {
		return nil, nil, err
	}
	drafts, err := a.validateBatch("messages", len(req.Messages), func(i int) (draft, []FieldError) {
		it := req.Messages[i]
		return a.validateMessage(fmt.Sprintf("messages[%d].", i), "recipientPhoneNumber",
			it.RecipientPhoneNumber, it.MessageContent, it.Subject, it.Priority)
	})
	if err != nil {
		return nil, nil, err
	}
	return body, drafts, nil
}

// maxFieldErrors bounds the field errors listed for one batch.
const maxFieldErrors = 50

func (a *API) validateBatch(field string, n int, item func(int) (draft, []FieldError)) ([]draft, error) {
	if n == 0 {
		return nil, validationError(FieldError{field, "missing or empty; send 1 to 500 messages"})
	}
	if n > maxBatchLen {
		return nil, validationError(FieldError{field,
			fmt.Sprintf("%d messages is more than the maximum of %d; split the batch", n, maxBatchLen)})
	}
	drafts := make([]draft, n)
	var errs []FieldError
	for i := range n {
		d, fe := item(i)
		drafts[i] = d
		errs = append(errs, fe...)
	}
	if len(errs) > 0 {
		if len(errs) > maxFieldErrors {
			errs = errs[:maxFieldErrors]
		}
		return nil, validationError(errs...)
	}
	return drafts, nil
}

var idempotencyKeyPattern = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)

// accept stores drafts durably and returns their ids. Only then may the
// caller respond.
func (a *API) accept(c echo.Context, body []byte, drafts []draft) ([]storage.ID, bool, error) {
	p := principal(c)
	idem := storage.Idempotency{}
	if key := c.Request().Header.Get("Idempotency-Key"); key != "" {
		if !idempotencyKeyPattern.MatchString(key) {
			return nil, false, newAPIError(http.StatusBadRequest, "invalid_idempotency_key",
				"The Idempotency-Key header must be 1 to 255 visible ASCII characters.")
		}
		route := c.Request().Method + " " + c.Path() + "\n"
		idem = storage.Idempotency{
			Client: p.ClientID, Key: key, TTL: a.cfg.Storage.IdempotencyTTL,
			Hash: sha256.Sum256(append([]byte(route), body...)),
		}
	}
	// A repeat of an accepted request gets its first response without being
	// counted against the limits, because it stores nothing.
	if idem.Key != "" {
		ids, found, err := a.store.Replay(c.Request().Context(), idem)
		if err != nil || found {
			return ids, found, err
		}
	}
	if err := a.admit(c, drafts); err != nil {
		return nil, false, err
	}
	msgs, err := newMessages(p.ClientID, drafts)
	if err != nil {
		return nil, false, err
	}
	ids, replay, err := a.store.Accept(c.Request().Context(), msgs, idem)
	if err != nil {
		return nil, false, err
	}
	if !replay {
		a.metrics.accepted.Add(float64(len(msgs)))
		a.delivery.Notify()
		for _, m := range msgs {
			a.log.Debug("message accepted", zap.Stringer("msg_id", m.ID),
				zap.String("client_id", p.ClientID))
		}
	}
	return ids, replay, nil
}

func setReplayed(c echo.Context, replay bool) {
	if replay {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
}

// compatGet returns a message of the calling client by the messageId query
// parameter, whose name matches case-insensitively as in ASP.NET Core model
// binding.
func (a *API) compatGet(c echo.Context) error {
	raw := c.QueryParam("messageId")
	if raw == "" {
		// Another spelling of the name; the first in sorted order, so that
		// the same request always gets the same answer.
		names := slices.Sorted(maps.Keys(c.QueryParams()))
		for _, name := range names {
			if values := c.QueryParams()[name]; strings.EqualFold(name, "messageId") && len(values) > 0 {
				raw = values[0]
				break
			}
		}
	}
	return a.getMessage(c, "messageId", raw)
}

// v1Get returns a message of the calling client by its id.
func (a *API) v1Get(c echo.Context) error {
	return a.getMessage(c, "id", c.Param("id"))
}

func (a *API) getMessage(c echo.Context, field, raw string) error {
	id, err := parseID(field, raw)
	if err != nil {
		return a.fail(c, err)
	}
	m, err := a.delivery.Message(c.Request().Context(), id)
	p := principal(c)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && m.CreatorID != p.ClientID && !p.Admin) {
		return a.fail(c, newAPIError(http.StatusNotFound, "message_not_found",
			fmt.Sprintf("No message with id %s was sent by this client.", id)))
	}
	if err != nil {
		return a.fail(c, err)
	}
	return c.JSON(http.StatusOK, viewOf(m))
}

func parseID(field, raw string) (storage.ID, error) {
	if raw == "" {
		return storage.ID{}, validationError(FieldError{field, "missing; send the message id"})
	}
	id, err := parseUUID(raw)
	if err != nil {
		return storage.ID{}, validationError(FieldError{field,
			fmt.Sprintf("%q is not a UUID such as 0192f0c4-6b1e-7c39-9a4e-2f1d8c3b5a60", raw)})
	}
	return id, nil
}

// fail writes err as an API error. Storage failures become 503 answers
// that tell the client to retry; they never carry an id.
func (a *API) fail(c echo.Context, err error) error {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return writeAPIError(c, apiErr)
	}
	return writeAPIError(c, a.storageError(c, err))
}

func (a *API) storageError(c echo.Context, err error) *APIError {
	retry := func(code, detail string, after time.Duration) *APIError {
		e := newAPIError(http.StatusServiceUnavailable, code, detail)
		e.RetryAfter = after
		return e
	}
	switch {
	case errors.Is(err, storage.ErrIdempotencyConflict):
		return newAPIError(http.StatusUnprocessableEntity, "idempotency_key_reused",
			"This Idempotency-Key was used with a different request; use a new key for a new request.")
	case errors.Is(err, storage.ErrLowDisk):
		a.log.Warn("message rejected", zap.String("reason", "low_disk"), zap.Error(err))
		return retry("low_disk", "The node is low on disk space and accepted nothing; "+
			"retry later.", 30*time.Second)
	case errors.Is(err, router.ErrPeerUnavailable):
		return retry("node_unavailable", "A node that may hold this message did not answer, so "+
			"the request was not completed; retry shortly.", 2*time.Second)
	case errors.Is(err, storage.ErrClosed), errors.Is(err, context.Canceled):
		return retry("shutting_down", "The node is shutting down and accepted nothing; "+
			"retry, another node may take the request.", time.Second)
	}
	a.log.Error("store operation failed", zap.String("path", c.Path()), zap.Error(err))
	return retry("storage_unavailable", "The node's storage failed, so the request was not "+
		"completed and accepted nothing; retry later.", 10*time.Second)
}
