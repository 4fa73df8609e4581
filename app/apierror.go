package app

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// FieldError names one invalid field of a request and what is wrong with it.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// APIError is an error answer of the REST API. It is written as
// application/problem+json (RFC 9457) on the project's own routes and in the
// ABP error shape on the routes of the previous service.
type APIError struct {
	Status     int
	Code       string // stable, machine-readable, such as "validation_failed"
	Title      string
	Detail     string
	Fields     []FieldError
	RetryAfter time.Duration // sets Retry-After when above zero
}

// Error returns the detail of e.
func (e *APIError) Error() string { return e.Detail }

func newAPIError(status int, code, detail string) *APIError {
	return &APIError{Status: status, Code: code, Title: http.StatusText(status), Detail: detail}
}

func validationError(fields ...FieldError) *APIError {
	e := newAPIError(http.StatusBadRequest, "validation_failed",
		"The request has invalid fields; see errors.")
	e.Fields = fields
	if len(fields) == 1 {
		e.Detail = fields[0].Field + ": " + fields[0].Detail
	}
	return e
}

// problem is the RFC 9457 body.
type problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Code     string       `json:"code"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// abpError is the error body of the previous service's routes.
type abpError struct {
	Error abpErrorInfo `json:"error"`
}

type abpErrorInfo struct {
	Code             string               `json:"code"`
	Message          string               `json:"message"`
	Details          string               `json:"details"`
	ValidationErrors []abpValidationError `json:"validationErrors"`
}

type abpValidationError struct {
	Message string   `json:"message"`
	Members []string `json:"members"`
}

// isCompatPath reports whether path belongs to the previous service's API,
// whose errors use the ABP shape.
func isCompatPath(path string) bool {
	return strings.HasPrefix(path, "/api/app/")
}

// writeAPIError sends e in the shape that the request's route uses.
func writeAPIError(c echo.Context, e *APIError) error {
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	}
	if isCompatPath(c.Request().URL.Path) {
		return c.JSON(e.Status, toABP(e))
	}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	return c.JSON(e.Status, problem{
		Type: "urn:esh3artech:problem:" + e.Code, Title: e.Title, Status: e.Status,
		Detail: e.Detail, Instance: c.Request().URL.Path, Code: e.Code, Errors: e.Fields,
	})
}

func toABP(e *APIError) abpError {
	info := abpErrorInfo{Code: e.Code, Message: e.Detail, Details: e.Title}
	if len(e.Fields) > 0 {
		info.Message = "Your request is not valid!"
		info.Details = "The following errors were detected during validation."
		for _, f := range e.Fields {
			info.Details += "\n - " + f.Field + ": " + f.Detail
			info.ValidationErrors = append(info.ValidationErrors,
				abpValidationError{Message: f.Detail, Members: []string{f.Field}})
		}
	}
	return abpError{Error: info}
}
