package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/storage"
)

// Seeds shared by the fuzz tests of request bodies.
var bodySeeds = []string{
	`{"recipientPhoneNumber": "775265496", "messageContent": "hi", "subject": "s"}`,
	`{"recipientPhoneNumber": "+967775265496", "messageContent": "hi", "priority": "urgent"}`,
	`{"recipientPhoneNumber": "00967775265496", "messageContent": "hi", "priority": 3}`,
	`{"batchMessages": [{"mobileNumber": "775265496", "messageContent": "hi"}]}`,
	`{"messages": [{"recipientPhoneNumber": "775265496", "messageContent": "hi"}, {"recipientPhoneNumber": "x"}]}`,
	`{"messages": []}`,
	`{"recipientPhoneNumber": 775265496}`,
	`{"recipientPhoneNumber": "775265496",, }`,
	`{"priority": {"a": [1, 2]}}`,
	`{} {}`,
	`{}}`,
	`[]`,
	`null`,
	`"text"`,
	``,
	"{\"messageContent\": \"\xff\xfe\"}",
	`{"subject": "` + strings.Repeat("ش", 40) + `"}`,
	`{"messageContent": "` + strings.Repeat("x", 2000) + `"}`,
}

// FuzzDecodeSendRequest feeds arbitrary bodies and content types to the
// decode and validation path of every send route. It must not panic, an
// error must be an *APIError with status 400, 413 or 415, and a success
// must yield only valid drafts.
func FuzzDecodeSendRequest(f *testing.F) {
	for i, body := range bodySeeds {
		f.Add(uint8(i), "application/json", []byte(body))
	}
	f.Add(uint8(1), "text/plain", []byte(`{}`))
	f.Add(uint8(2), "application/merge-patch+json; charset=utf-8", []byte(`{}`))
	f.Add(uint8(3), "", []byte(`{}`))
	f.Add(uint8(0), "application/json; charset", []byte(`{}`))

	// The smallest allowed body limit, so that the fuzzer reaches 413.
	cfg := newTestConfig(f, "ESH3ARTECH_HTTP_MAX_BODY_BYTES=1024")
	phones, err := NewPhoneNormalizer(cfg.Phone)
	require.NoError(f, err)
	api := &API{cfg: cfg, phones: phones}
	e := echo.New()
	stored := regexp.MustCompile(`^967(?:77|78|70|73|71)[0-9]{7}$`)

	f.Fuzz(func(t *testing.T, route uint8, contentType string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		c := e.NewContext(req, httptest.NewRecorder())

		var drafts []draft
		var err error
		batch := false
		switch route % 4 {
		case 0:
			_, drafts, err = api.readSend(c, false)
		case 1:
			_, drafts, err = api.readSend(c, true)
		case 2:
			_, drafts, err = api.readCompatBatch(c)
			batch = true
		case 3:
			_, drafts, err = api.readV1Batch(c)
			batch = true
		}

		if err != nil {
			var apiErr *APIError
			require.True(t, errors.As(err, &apiErr), "error %v is not an *APIError", err)
			require.Contains(t, []int{400, 413, 415}, apiErr.Status)
			require.NotEmpty(t, apiErr.Code)
			require.NotEmpty(t, apiErr.Detail)
			return
		}
		require.NotEmpty(t, drafts)
		if !batch {
			require.Len(t, drafts, 1)
		}
		require.LessOrEqual(t, len(drafts), maxBatchLen)
		for _, d := range drafts {
			require.Regexp(t, stored, d.phone)
			require.NotEmpty(t, strings.TrimSpace(d.content))
			require.LessOrEqual(t, utf8.RuneCountInString(d.subject), maxSubjectLen)
			require.True(t, d.priority.Valid(), "priority %d", d.priority)
		}
	})
}

// FuzzNormalizePhone checks that any accepted number comes out as the
// country code and a national number of the configured pattern, and that
// normalising it again returns it unchanged.
func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{
		"775265496", "967775265496", "+967775265496", "00967775265496", " 77-526 5496 ",
		"", "+", "00", "967", "+967", "967967775265496", "7752654960", "٧٧٥٢٦٥٤٩٦", "775265496\n",
	} {
		f.Add(s)
	}
	phones := defaultPhones(f)
	national := regexp.MustCompile(`^(77|78|70|73|71)\d{7}$`)

	f.Fuzz(func(t *testing.T, s string) {
		got, err := phones.Normalize(s)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidPhone)
			return
		}
		require.True(t, strings.HasPrefix(got, "967"), "%q", got)
		require.Regexp(t, national, strings.TrimPrefix(got, "967"))
		require.True(t, allDigits(got), "%q", got)
		again, err := phones.Normalize(got)
		require.NoError(t, err)
		require.Equal(t, got, again)
	})
}

// FuzzParseUUID checks that only the canonical 36-character form parses,
// and that it parses to the id whose lowercase form it is.
func FuzzParseUUID(f *testing.F) {
	for _, s := range []string{
		"0192f0c4-6b1e-7c39-9a4e-2f1d8c3b5a60", "0192F0C4-6B1E-7C39-9A4E-2F1D8C3B5A60",
		"{0192f0c4-6b1e-7c39-9a4e-2f1d8c3b5a60}", "urn:uuid:0192f0c4-6b1e-7c39-9a4e-2f1d8c3b5a60",
		"0192f0c46b1e7c399a4e2f1d8c3b5a60", "0192f0c4-6b1e-7c39-9a4e-2f1d8c3b5a6g",
		"0192f0c4+6b1e-7c39-9a4e-2f1d8c3b5a60", "", "00000000-0000-0000-0000-000000000000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseUUID(s)
		if err != nil {
			return
		}
		require.Len(t, s, 36)
		require.Equal(t, strings.ToLower(s), id.String())
	})
}

// FuzzParsePriority checks that any accepted priority is one of the four
// defined ones, and that a JSON integer from 1 to 4 maps to itself.
func FuzzParsePriority(f *testing.F) {
	for _, s := range []string{
		"1", "4", "0", "5", "-1", "2.0", "1e0", `"low"`, `"URGENT"`, `"Normal"`, `"high "`,
		`""`, "null", " null ", "true", "[]", "{}", `"\u006cow"`, "99999999999999999999", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := parsePriority(json.RawMessage(raw))
		if err != nil {
			require.Zero(t, p)
			return
		}
		require.True(t, p.Valid(), "priority %d from %q", p, raw)
		if n, convErr := strconv.Atoi(string(bytes.TrimSpace(raw))); convErr == nil {
			require.EqualValues(t, n, p)
		}
	})
}

// FuzzAPIHandler sends arbitrary requests through the node's whole echo
// handler. Every response must be a success or a well-formed error in the
// route's shape, and never a 500.
func FuzzAPIHandler(f *testing.F) {
	for i, body := range bodySeeds {
		f.Add(uint8(i), "application/json", "", []byte(body))
	}
	f.Add(uint8(0), "application/json", "key-1", []byte(bodySeeds[0]))
	f.Add(uint8(0), "application/json", "key-1", []byte(bodySeeds[1]))
	f.Add(uint8(3), "application/json", "has space", []byte(bodySeeds[0]))
	f.Add(uint8(5), "", "", []byte("0192f0c4-6b1e-7c39-9a4e-2f1d8c3b5a60"))
	f.Add(uint8(6), "", "", []byte("../../health/live"))
	f.Add(uint8(6), "", "", []byte("not a uuid?&#"))
	f.Add(uint8(1), "text/plain", "", []byte(`{}`))

	node := newTestNode(f)
	id, err := storage.NewID()
	require.NoError(f, err)
	f.Add(uint8(6), "", "", []byte(id.String()))

	f.Fuzz(func(t *testing.T, route uint8, contentType, idempotencyKey string, body []byte) {
		method, path := http.MethodPost, ""
		switch route % 7 {
		case 0:
			path = "/api/app/message/send-one-way-message"
		case 1:
			path = "/api/app/message/ingestion-batch-message"
		case 2:
			path = "/api/v1/messages"
		case 3:
			path = "/api/v1/messages/batch"
		case 4:
			path = "/api/app/message/ingestion-send-one-way-message"
		case 5:
			method, path = http.MethodGet, "/api/app/message/message-by-id?messageId="+url.QueryEscape(string(body))
		case 6:
			method, path = http.MethodGet, "/api/v1/messages/"+url.PathEscape(string(body))
		}
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("X-Api-Key", acmeKey)
		if idempotencyKey != "" {
			req.Header.Set("Idempotency-Key", idempotencyKey)
		}
		rec := httptest.NewRecorder()
		node.echo.ServeHTTP(rec, req)

		require.NotEqual(t, http.StatusInternalServerError, rec.Code, "body: %s", rec.Body)
		if rec.Code < 300 {
			require.GreaterOrEqual(t, rec.Code, 200)
			require.True(t, json.Valid(rec.Body.Bytes()), "body: %s", rec.Body)
			return
		}
		// 429 and 503 come from the rate limits and the queue's high-water
		// mark, which a long fuzzing run reaches.
		require.Contains(t, []int{400, 404, 413, 415, 422, 429, 503}, rec.Code, "body: %s", rec.Body)
		requireError(t, rec, path, rec.Code)
	})
}
