package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// readJSONBody checks the content type and size of the request body and
// returns it, reading it within hc.BodyTimeout. It returns an *APIError
// for each kind of bad input.
func readJSONBody(c echo.Context, hc HTTPConfig) ([]byte, error) {
	r := c.Request()
	limit := hc.MaxBodyBytes
	if err := checkJSONContentType(r.Header.Get(echo.HeaderContentType)); err != nil {
		return nil, err
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil, newAPIError(http.StatusUnsupportedMediaType, "unsupported_content_encoding",
			fmt.Sprintf("Content-Encoding %s is not supported; send the body uncompressed.", enc))
	}
	if r.ContentLength > limit {
		return nil, tooLargeError(limit)
	}
	// A client that sends its body slowly would otherwise hold a slot of
	// limits.max_in_flight for as long as it likes.
	_ = http.NewResponseController(c.Response().Writer).SetReadDeadline(time.Now().Add(hc.BodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, limit))
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return nil, newAPIError(http.StatusRequestTimeout, "body_timeout", fmt.Sprintf(
			"The request body did not arrive within %s; send it at once.", hc.BodyTimeout))
	}
	if errors.As(err, &tooLarge) {
		return nil, tooLargeError(limit)
	}
	if err != nil {
		return nil, newAPIError(http.StatusBadRequest, "body_unreadable",
			"The request body could not be read: "+err.Error())
	}
	if !utf8.Valid(body) {
		// encoding/json would replace the invalid bytes and store a
		// different text than the client sent.
		return nil, newAPIError(http.StatusBadRequest, "invalid_utf8",
			"The request body is not valid UTF-8; send the text encoded as UTF-8.")
	}
	return body, nil
}

func tooLargeError(limit int64) *APIError {
	return newAPIError(http.StatusRequestEntityTooLarge, "body_too_large",
		fmt.Sprintf("The request body is larger than the limit of %d bytes; "+
			"send fewer or shorter messages per request.", limit))
}

func checkJSONContentType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if cs, ok := params["charset"]; err == nil && ok && !strings.EqualFold(cs, "utf-8") {
		return newAPIError(http.StatusUnsupportedMediaType, "unsupported_charset",
			fmt.Sprintf("Charset %s is not supported; send the body as UTF-8.", cs))
	}
	if err == nil && (mt == "application/json" || mt == "text/json" ||
		(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		return nil
	}
	if ct == "" {
		ct = "none"
	}
	return newAPIError(http.StatusUnsupportedMediaType, "unsupported_media_type",
		fmt.Sprintf("Content-Type %s is not supported; send the body as application/json.", ct))
}

// decodeJSON decodes body into v. Field names match case-insensitively.
// With strict set, fields that v does not have are rejected. Errors give
// the offset where the body failed to parse.
func decodeJSON(body []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	if err == nil {
		// Decoder.More reports false for a trailing '}' or ']', so the rest
		// of the body is checked for anything other than JSON whitespace.
		off := dec.InputOffset()
		if rest := bytes.TrimLeft(body[off:], " \t\r\n"); len(rest) > 0 {
			return malformed("unexpected data after the JSON value at offset %d", len(body)-len(rest))
		}
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return malformed("the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("the JSON ends at offset %d before the value is complete", len(body))
	case errors.As(err, &syn):
		return malformed("%s at offset %d", syn.Error(), syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return validationError(FieldError{Field: field,
			Detail: fmt.Sprintf("expected %s, got JSON %s", jsonType(typ.Type.Kind().String()), typ.Value)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return validationError(FieldError{Field: name, Detail: "unknown field; check its spelling"})
	}
	return malformed("%s", err.Error())
}

func malformed(format string, args ...any) error {
	return newAPIError(http.StatusBadRequest, "malformed_json",
		"The body is not valid JSON: "+fmt.Sprintf(format, args...)+".")
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "a number"
}
