package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/storage"
)

// canonicalUUID matches the lowercase canonical form of a UUID.
var canonicalUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// sendRoute is one of the routes that accept messages.
type sendRoute struct {
	name   string
	path   string
	batch  bool
	compat bool
}

var sendRoutes = []sendRoute{
	{"compat-send", "/api/app/message/send-one-way-message", false, true},
	{"compat-ingestion-send", "/api/app/message/ingestion-send-one-way-message", false, true},
	{"compat-batch", "/api/app/message/ingestion-batch-message", true, true},
	{"v1-send", "/api/v1/messages", false, false},
	{"v1-batch", "/api/v1/messages/batch", true, false},
}

// item is one message of a request body, by logical field: "phone",
// "messageContent", "subject" and "priority". A missing key leaves the field
// out of the JSON.
type item map[string]any

func validItem() item { return item{"phone": "775265496", "messageContent": "hello"} }

// phoneField returns the JSON name of the recipient field on r.
func (r sendRoute) phoneField() string {
	if r.compat && r.batch {
		return "mobileNumber"
	}
	return "recipientPhoneNumber"
}

// body renders items as r's request body. A single-send route takes the
// first item only.
func (r sendRoute) body(t testing.TB, items ...item) string {
	t.Helper()
	objects := make([]map[string]any, len(items))
	for i, it := range items {
		o := map[string]any{}
		for k, v := range it {
			if k == "phone" {
				k = r.phoneField()
			}
			o[k] = v
		}
		objects[i] = o
	}
	var v any = objects[0]
	switch {
	case r.batch && r.compat:
		v = map[string]any{"batchMessages": objects}
	case r.batch:
		v = map[string]any{"messages": objects}
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// field returns the name under which r reports the logical field of item i.
func (r sendRoute) field(i int, logical string) string {
	name := logical
	if logical == "phone" {
		name = r.phoneField()
	}
	switch {
	case r.batch && r.compat:
		return fmt.Sprintf("batchMessages[%d].%s", i, name)
	case r.batch:
		return fmt.Sprintf("messages[%d].%s", i, name)
	}
	return name
}

func (r sendRoute) okStatus() int {
	if r.compat {
		return http.StatusOK
	}
	return http.StatusAccepted
}

// getMessageJSON reads a message as acme and returns its JSON object.
func getMessageJSON(t testing.TB, node *Node, path string) map[string]any {
	t.Helper()
	rec := serve(t, node, request{Method: http.MethodGet, Path: path, Header: asAcme()})
	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	require.Equal(t, "application/json", mediaType(rec.Header().Get("Content-Type")))
	var m map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m))
	return m
}

func TestCompatSendAccepted(t *testing.T) {
	node := newTestNode(t)
	for _, r := range sendRoutes[:2] {
		t.Run(r.name, func(t *testing.T) {
			rec := serve(t, node, request{
				Method: http.MethodPost, Path: r.path, Header: asAcme(),
				Body: `{"recipientPhoneNumber": "+967775265496", "messageContent": "hello", "subject": "greeting"}`,
			})
			require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
			var out struct {
				ID string `json:"id"`
			}
			decodeStrict(t, rec.Body.Bytes(), &out)
			require.Regexp(t, canonicalUUID, out.ID)

			m := getMessageJSON(t, node, "/api/app/message/message-by-id?messageId="+out.ID)
			require.Equal(t, out.ID, m["id"])
			require.Equal(t, "acme", m["creatorId"])
			require.Equal(t, "967775265496", m["recipientPhoneNumber"])
			require.Equal(t, "hello", m["messageContent"])
			require.Equal(t, "greeting", m["subject"])
		})
	}
}

func TestV1SendAccepted(t *testing.T) {
	node := newTestNode(t)
	rec := serve(t, node, request{
		Method: http.MethodPost, Path: "/api/v1/messages", Header: asAcme(),
		Body: `{"recipientPhoneNumber": "775265496", "messageContent": "hello", "subject": "greeting"}`,
	})
	require.Equal(t, http.StatusAccepted, rec.Code, "body: %s", rec.Body)
	var out struct {
		ID     string `json:"id"`
		Status int    `json:"status"`
	}
	decodeStrict(t, rec.Body.Bytes(), &out)
	require.Regexp(t, canonicalUUID, out.ID)
	require.Equal(t, int(storage.StatusQueued), out.Status)
	require.Equal(t, "/api/v1/messages/"+out.ID, rec.Header().Get("Location"))
	require.Empty(t, rec.Header().Get("Idempotent-Replayed"))

	m := getMessageJSON(t, node, rec.Header().Get("Location"))
	require.Equal(t, out.ID, m["id"])
	require.Equal(t, "acme", m["creatorId"])
	require.Equal(t, "967775265496", m["recipientPhoneNumber"])
	require.Equal(t, "hello", m["messageContent"])
	require.Equal(t, "greeting", m["subject"])
	require.EqualValues(t, storage.PriorityNormal, m["priority"])
	require.EqualValues(t, 0, m["retryCount"])
	require.NotEmpty(t, m["creationTime"])
}

// TestMessageStatusQueued reads a message right after acceptance. Its
// status is 4 (Queued) until a router takes it from the queue. A running
// router may already have moved it to the recipient's inbox (0, Pending).
func TestMessageStatusQueued(t *testing.T) {
	node := newTestNode(t)
	id := sendV1(t, node, "775265496")
	for _, path := range []string{"/api/v1/messages/" + id, "/api/app/message/message-by-id?messageId=" + id} {
		m := getMessageJSON(t, node, path)
		require.Contains(t, []any{float64(storage.StatusQueued), float64(storage.StatusPending)}, m["status"])
	}
}

func TestMessageJSONFields(t *testing.T) {
	node := newTestNode(t)
	id := sendV1(t, node, "775265496")
	want := []string{
		"id", "creatorId", "recipientPhoneNumber", "subject", "messageContent", "status",
		"priority", "retryCount", "creationTime", "deliveredAt", "failureReason",
		"lastRetryAt", "nextRetryAt", "movedToDlqAt",
	}
	for _, path := range []string{"/api/v1/messages/" + id, "/api/app/message/message-by-id?messageId=" + id} {
		m := getMessageJSON(t, node, path)
		got := make([]string, 0, len(m))
		for k := range m {
			got = append(got, k)
		}
		require.ElementsMatch(t, want, got)
		require.IsType(t, float64(0), m["status"], "status is a number")
	}
}

func TestV1SendPriority(t *testing.T) {
	node := newTestNode(t)
	cases := []struct {
		name     string
		priority string
		want     storage.Priority
	}{
		{"omitted", "", storage.PriorityNormal},
		{"null", "null", storage.PriorityNormal},
		{"number-low", "1", storage.PriorityLow},
		{"number-urgent", "4", storage.PriorityUrgent},
		{"name-high", `"high"`, storage.PriorityHigh},
		{"name-upper", `"URGENT"`, storage.PriorityUrgent},
		{"name-mixed", `"Low"`, storage.PriorityLow},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"recipientPhoneNumber": "775265496", "messageContent": "hi"`
			if tc.priority != "" {
				body += `, "priority": ` + tc.priority
			}
			rec := serve(t, node, request{
				Method: http.MethodPost, Path: "/api/v1/messages", Header: asAcme(), Body: body + "}",
			})
			require.Equal(t, http.StatusAccepted, rec.Code, "body: %s", rec.Body)
			m := getMessageJSON(t, node, rec.Header().Get("Location"))
			require.EqualValues(t, tc.want, m["priority"])
		})
	}
}

func TestV1SendPriorityInvalid(t *testing.T) {
	node := newTestNode(t)
	for _, priority := range []string{"0", "5", "-1", "2.5", `"max"`, `""`, "true", "[]", "{}"} {
		t.Run(priority, func(t *testing.T) {
			rec := serve(t, node, request{
				Method: http.MethodPost, Path: "/api/v1/messages", Header: asAcme(),
				Body: `{"recipientPhoneNumber": "775265496", "messageContent": "hi", "priority": ` + priority + `}`,
			})
			code, _ := requireError(t, rec, "/api/v1/messages", http.StatusBadRequest)
			require.Equal(t, "validation_failed", code)
			requireFields(t, rec, "/api/v1/messages", "priority")
		})
	}
}

func TestCompatBatchAccepted(t *testing.T) {
	node := newTestNode(t)
	rec := serve(t, node, request{
		Method: http.MethodPost, Path: "/api/app/message/ingestion-batch-message", Header: asAcme(),
		Body: `{"batchMessages": [
			{"mobileNumber": "775265496", "messageContent": "one", "subject": "s"},
			{"mobileNumber": "00967785265496", "messageContent": "two"},
			{"mobileNumber": "+967705265496", "messageContent": "three"}]}`,
	})
	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	require.JSONEq(t, "true", rec.Body.String())
	require.Equal(t, 3, countStoredMessages(t, node))
}

func TestV1BatchAccepted(t *testing.T) {
	node := newTestNode(t)
	rec := serve(t, node, request{
		Method: http.MethodPost, Path: "/api/v1/messages/batch", Header: asAcme(),
		Body: `{"messages": [
			{"recipientPhoneNumber": "775265496", "messageContent": "one"},
			{"recipientPhoneNumber": "967785265496", "messageContent": "two", "priority": "high"},
			{"recipientPhoneNumber": "705265496", "messageContent": "three", "priority": 1}]}`,
	})
	require.Equal(t, http.StatusAccepted, rec.Code, "body: %s", rec.Body)
	var out struct {
		IDs []string `json:"ids"`
	}
	decodeStrict(t, rec.Body.Bytes(), &out)
	require.Len(t, out.IDs, 3)

	want := []struct {
		content, phone string
		priority       storage.Priority
	}{
		{"one", "967775265496", storage.PriorityNormal},
		{"two", "967785265496", storage.PriorityHigh},
		{"three", "967705265496", storage.PriorityLow},
	}
	for i, id := range out.IDs {
		require.Regexp(t, canonicalUUID, id)
		m := getMessageJSON(t, node, "/api/v1/messages/"+id)
		require.Equal(t, want[i].content, m["messageContent"], "ids are in request order")
		require.Equal(t, want[i].phone, m["recipientPhoneNumber"])
		require.EqualValues(t, want[i].priority, m["priority"])
	}
}

func TestBatchMaxSizeAccepted(t *testing.T) {
	node := newTestNode(t)
	for _, r := range []sendRoute{sendRoutes[2], sendRoutes[4]} {
		t.Run(r.name, func(t *testing.T) {
			items := make([]item, maxBatchLen)
			for i := range items {
				items[i] = validItem()
			}
			rec := serve(t, node, request{Method: http.MethodPost, Path: r.path, Header: asAcme(), Body: r.body(t, items...)})
			require.Equal(t, r.okStatus(), rec.Code, "body: %s", rec.Body)
			if !r.compat {
				var out struct {
					IDs []string `json:"ids"`
				}
				decodeStrict(t, rec.Body.Bytes(), &out)
				require.Len(t, out.IDs, maxBatchLen)
			}
		})
	}
}

func TestSendFieldNamesCaseInsensitive(t *testing.T) {
	node := newTestNode(t)
	bodies := map[string]string{
		"compat-send":  `{"RECIPIENTPHONENUMBER": "775265496", "MessageContent": "hi", "SUBJECT": "s"}`,
		"compat-batch": `{"BatchMessages": [{"MOBILENUMBER": "775265496", "messagecontent": "hi"}]}`,
		"v1-send":      `{"RecipientPhoneNumber": "775265496", "MESSAGECONTENT": "hi", "Priority": "low"}`,
		"v1-batch":     `{"MESSAGES": [{"recipientphonenumber": "775265496", "MessageContent": "hi"}]}`,
	}
	for _, r := range sendRoutes {
		body, ok := bodies[r.name]
		if !ok {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			rec := serve(t, node, request{Method: http.MethodPost, Path: r.path, Header: asAcme(), Body: body})
			require.Equal(t, r.okStatus(), rec.Code, "body: %s", rec.Body)
		})
	}
}

// TestSendUnknownFields checks that /api/v1 rejects fields it does not
// know, while the previous service's routes ignore them as ASP.NET Core
// did.
func TestSendUnknownFields(t *testing.T) {
	node := newTestNode(t)
	for _, r := range sendRoutes {
		t.Run(r.name, func(t *testing.T) {
			it := validItem()
			it["extra"] = 1
			rec := serve(t, node, request{Method: http.MethodPost, Path: r.path, Header: asAcme(), Body: r.body(t, it)})
			if r.compat {
				require.Equal(t, r.okStatus(), rec.Code, "body: %s", rec.Body)
				return
			}
			_, text := requireError(t, rec, r.path, http.StatusBadRequest)
			require.Contains(t, text, "extra")
		})
	}
}

func TestSendBodyRejected(t *testing.T) {
	node := newTestNode(t)
	tooLarge := `{"recipientPhoneNumber": "775265496", "messageContent": "` +
		strings.Repeat("x", int(node.cfg.HTTP.MaxBodyBytes)) + `"}`
	cases := []struct {
		name        string
		body        string
		contentType string
		status      int
		code        string
		contains    string
	}{
		{"malformed", `{"recipientPhoneNumber": "775265496",, }`, "", 400, "malformed_json", "offset 38"},
		{"truncated", `{"recipientPhoneNumber": "77`, "", 400, "malformed_json", "offset 28"},
		{"trailing-data", `{} {}`, "", 400, "malformed_json", "offset 3"},
		{"trailing-brace", `{}}`, "", 400, "malformed_json", "offset 2"},
		{"trailing-bracket", "{}\n]", "", 400, "malformed_json", "offset 3"},
		{"empty", ` `, "", 400, "malformed_json", "empty"},
		{"wrong-type", `{"recipientPhoneNumber": 775265496}`, "", 400, "validation_failed", "expected a string"},
		{"array", `[]`, "", 400, "validation_failed", "an object"},
		{"text-plain", `{}`, "text/plain", 415, "unsupported_media_type", "text/plain"},
		{"form", `a=b`, "application/x-www-form-urlencoded", 415, "unsupported_media_type", "application/json"},
		{"no-content-type", `{}`, "-", 415, "unsupported_media_type", "none"},
		{"too-large", tooLarge, "", 413, "body_too_large", strconv.FormatInt(node.cfg.HTTP.MaxBodyBytes, 10)},
	}
	for _, r := range sendRoutes {
		for _, tc := range cases {
			t.Run(r.name+"/"+tc.name, func(t *testing.T) {
				h := asAcme()
				switch tc.contentType {
				case "":
				case "-":
					h["Content-Type"] = ""
				default:
					h["Content-Type"] = tc.contentType
				}
				body := tc.body
				if r.batch && tc.code == "validation_failed" && tc.name == "wrong-type" {
					body = r.body(t, item{"phone": 775265496, "messageContent": "hi"})
				}
				rec := serve(t, node, request{Method: http.MethodPost, Path: r.path, Header: h, Body: body})
				code, text := requireError(t, rec, r.path, tc.status)
				require.Equal(t, tc.code, code)
				require.Contains(t, text, tc.contains)
			})
		}
	}
}

func TestSendFieldRejected(t *testing.T) {
	node := newTestNode(t)
	cases := []struct {
		name     string
		item     item
		field    string
		contains string
	}{
		{"phone-missing", item{"messageContent": "hi"}, "phone", "missing"},
		{"phone-blank", item{"phone": "  ", "messageContent": "hi"}, "phone", "missing"},
		{"phone-short", item{"phone": "77526549", "messageContent": "hi"}, "phone", "77526549"},
		{"phone-other-country", item{"phone": "+966775265496", "messageContent": "hi"}, "phone", "+966775265496"},
		{"phone-bad-prefix", item{"phone": "755265496", "messageContent": "hi"}, "phone", "755265496"},
		{"phone-letters", item{"phone": "77526549a", "messageContent": "hi"}, "phone", "77526549a"},
		{"content-missing", item{"phone": "775265496"}, "messageContent", "missing"},
		{"content-blank", item{"phone": "775265496", "messageContent": " \t\n"}, "messageContent", "missing"},
		{"subject-33", item{"phone": "775265496", "messageContent": "hi", "subject": strings.Repeat("s", 33)},
			"subject", "33 characters"},
		{"subject-33-runes", item{"phone": "775265496", "messageContent": "hi", "subject": strings.Repeat("ش", 33)},
			"subject", "33 characters"},
	}
	for _, r := range sendRoutes {
		for _, tc := range cases {
			t.Run(r.name+"/"+tc.name, func(t *testing.T) {
				rec := serve(t, node, request{Method: http.MethodPost, Path: r.path, Header: asAcme(), Body: r.body(t, tc.item)})
				code, text := requireError(t, rec, r.path, http.StatusBadRequest)
				require.Equal(t, "validation_failed", code)
				require.Contains(t, text, tc.contains)
				requireFields(t, rec, r.path, r.field(0, tc.field))
			})
		}
	}
}

func TestSendSubjectMaxLength(t *testing.T) {
	node := newTestNode(t)
	for _, r := range sendRoutes {
		t.Run(r.name, func(t *testing.T) {
			it := validItem()
			it["subject"] = strings.Repeat("ش", maxSubjectLen)
			rec := serve(t, node, request{Method: http.MethodPost, Path: r.path, Header: asAcme(), Body: r.body(t, it)})
			require.Equal(t, r.okStatus(), rec.Code, "body: %s", rec.Body)
		})
	}
}

func TestBatchSizeRejected(t *testing.T) {
	node := newTestNode(t)
	for _, r := range []sendRoute{sendRoutes[2], sendRoutes[4]} {
		listField := "messages"
		if r.compat {
			listField = "batchMessages"
		}
		tooMany := make([]item, maxBatchLen+1)
		for i := range tooMany {
			tooMany[i] = validItem()
		}
		cases := map[string]string{
			"empty":    `{"` + listField + `": []}`,
			"null":     `{"` + listField + `": null}`,
			"missing":  `{}`,
			"over-500": r.body(t, tooMany...),
		}
		for name, body := range cases {
			t.Run(r.name+"/"+name, func(t *testing.T) {
				rec := serve(t, node, request{Method: http.MethodPost, Path: r.path, Header: asAcme(), Body: body})
				code, _ := requireError(t, rec, r.path, http.StatusBadRequest)
				require.Equal(t, "validation_failed", code)
				requireFields(t, rec, r.path, listField)
			})
		}
	}
	require.Zero(t, countStoredMessages(t, node))
}

func TestBatchOneBadItemStoresNothing(t *testing.T) {
	node := newTestNode(t)
	sendV1(t, node, "775265496")
	for _, r := range []sendRoute{sendRoutes[2], sendRoutes[4]} {
		t.Run(r.name, func(t *testing.T) {
			bad := item{"phone": "12345", "messageContent": "bad"}
			rec := serve(t, node, request{
				Method: http.MethodPost, Path: r.path, Header: asAcme(),
				Body: r.body(t, validItem(), bad, validItem()),
			})
			requireError(t, rec, r.path, http.StatusBadRequest)
			requireFields(t, rec, r.path, r.field(1, "phone"))
		})
	}
	require.Equal(t, 1, countStoredMessages(t, node), "only the first, valid request is stored")
}

func TestPhoneFormsStoredNormalized(t *testing.T) {
	node := newTestNode(t)
	for _, phone := range []string{"775265496", "967775265496", "+967775265496", "00967775265496", "+967 775-265-496"} {
		t.Run(phone, func(t *testing.T) {
			id := sendV1(t, node, phone)
			m := getMessageJSON(t, node, "/api/v1/messages/"+id)
			require.Equal(t, "967775265496", m["recipientPhoneNumber"])
		})
	}
}

func TestGetRejected(t *testing.T) {
	node := newTestNode(t)
	globexID := ""
	{
		rec := serve(t, node, request{
			Method: http.MethodPost, Path: "/api/v1/messages", Header: asGlobex(),
			Body: `{"recipientPhoneNumber": "775265496", "messageContent": "globex's"}`,
		})
		require.Equal(t, http.StatusAccepted, rec.Code, "body: %s", rec.Body)
		var out struct{ ID string }
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
		globexID = out.ID
	}
	unknown, err := storage.NewID()
	require.NoError(t, err)

	cases := []struct {
		name   string
		path   string
		status int
		code   string
	}{
		{"compat-bad-uuid", "/api/app/message/message-by-id?messageId=not-a-uuid", 400, "validation_failed"},
		{"compat-braced-uuid", "/api/app/message/message-by-id?messageId={" + unknown.String() + "}", 400, "validation_failed"},
		{"compat-missing-id", "/api/app/message/message-by-id", 400, "validation_failed"},
		{"compat-unknown", "/api/app/message/message-by-id?messageId=" + unknown.String(), 404, "message_not_found"},
		{"compat-other-client", "/api/app/message/message-by-id?messageId=" + globexID, 404, "message_not_found"},
		{"v1-bad-uuid", "/api/v1/messages/not-a-uuid", 400, "validation_failed"},
		{"v1-short-uuid", "/api/v1/messages/" + unknown.String()[:35], 400, "validation_failed"},
		{"v1-unknown", "/api/v1/messages/" + unknown.String(), 404, "message_not_found"},
		{"v1-other-client", "/api/v1/messages/" + globexID, 404, "message_not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(t, node, request{Method: http.MethodGet, Path: tc.path, Header: asAcme()})
			code, _ := requireError(t, rec, tc.path, tc.status)
			require.Equal(t, tc.code, code)
		})
	}
}

func TestGetUppercaseUUID(t *testing.T) {
	node := newTestNode(t)
	id := sendV1(t, node, "775265496")
	m := getMessageJSON(t, node, "/api/v1/messages/"+strings.ToUpper(id))
	require.Equal(t, id, m["id"], "ids are returned in lowercase")
}

func TestCompatPathsCaseInsensitive(t *testing.T) {
	node := newTestNode(t)
	rec := serve(t, node, request{
		Method: http.MethodPost, Path: "/API/App/Message/Send-One-Way-Message", Header: asAcme(),
		Body: `{"recipientPhoneNumber": "775265496", "messageContent": "hi"}`,
	})
	require.Equal(t, http.StatusOK, rec.Code, "body: %s", rec.Body)
	var out struct{ ID string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))

	m := getMessageJSON(t, node, "/Api/App/Message/Message-By-Id?MessageId="+out.ID)
	require.Equal(t, out.ID, m["id"])

	rec = serve(t, node, request{
		Method: http.MethodPost, Path: "/API/APP/MESSAGE/INGESTION-BATCH-MESSAGE", Header: asAcme(),
		Body: `{"batchMessages": []}`,
	})
	requireABP(t, rec, http.StatusBadRequest)
}

func TestIdempotentReplay(t *testing.T) {
	node := newTestNode(t)
	for _, r := range sendRoutes {
		t.Run(r.name, func(t *testing.T) {
			key := "replay-" + r.name
			body := r.body(t, validItem())
			first := serve(t, node, request{Method: http.MethodPost, Path: r.path, Body: body, Header: asAcme("Idempotency-Key", key)})
			require.Equal(t, r.okStatus(), first.Code, "body: %s", first.Body)
			require.Empty(t, first.Header().Get("Idempotent-Replayed"))

			second := serve(t, node, request{Method: http.MethodPost, Path: r.path, Body: body, Header: asAcme("Idempotency-Key", key)})
			require.Equal(t, r.okStatus(), second.Code, "body: %s", second.Body)
			require.Equal(t, "true", second.Header().Get("Idempotent-Replayed"))
			require.JSONEq(t, first.Body.String(), second.Body.String())
			require.Equal(t, first.Header().Get("Location"), second.Header().Get("Location"))
		})
	}
	// One message per single route and one per batch route: the replays
	// stored nothing.
	require.Equal(t, len(sendRoutes), countStoredMessages(t, node))
}

func TestIdempotencyKeyConflict(t *testing.T) {
	node := newTestNode(t)
	for _, r := range sendRoutes {
		t.Run(r.name, func(t *testing.T) {
			key := "conflict-" + r.name
			first := serve(t, node, request{Method: http.MethodPost, Path: r.path, Body: r.body(t, validItem()),
				Header: asAcme("Idempotency-Key", key)})
			require.Equal(t, r.okStatus(), first.Code, "body: %s", first.Body)

			other := validItem()
			other["messageContent"] = "a different message"
			rec := serve(t, node, request{Method: http.MethodPost, Path: r.path, Body: r.body(t, other),
				Header: asAcme("Idempotency-Key", key)})
			code, _ := requireError(t, rec, r.path, http.StatusUnprocessableEntity)
			require.Equal(t, "idempotency_key_reused", code)
		})
	}
	require.Equal(t, len(sendRoutes), countStoredMessages(t, node))
}

func TestIdempotencyKeyPerClient(t *testing.T) {
	node := newTestNode(t)
	for _, r := range sendRoutes {
		t.Run(r.name, func(t *testing.T) {
			key := "shared-" + r.name
			body := r.body(t, validItem())
			acme := serve(t, node, request{Method: http.MethodPost, Path: r.path, Body: body, Header: asAcme("Idempotency-Key", key)})
			require.Equal(t, r.okStatus(), acme.Code, "body: %s", acme.Body)

			globex := serve(t, node, request{Method: http.MethodPost, Path: r.path, Body: body, Header: asGlobex("Idempotency-Key", key)})
			require.Equal(t, r.okStatus(), globex.Code, "body: %s", globex.Body)
			require.Empty(t, globex.Header().Get("Idempotent-Replayed"))
			if r.compat && r.batch {
				return
			}
			require.NotEqual(t, acme.Body.String(), globex.Body.String(), "each client gets its own message")
		})
	}
	require.Equal(t, 2*len(sendRoutes), countStoredMessages(t, node))
}

func TestIdempotencyKeyInvalid(t *testing.T) {
	node := newTestNode(t)
	keys := map[string]string{
		"300-chars": strings.Repeat("k", 300),
		"256-chars": strings.Repeat("k", 256),
		"space":     "two words",
		"non-ascii": "clé",
		"control":   "a\tb",
	}
	for _, r := range sendRoutes {
		for name, key := range keys {
			t.Run(r.name+"/"+name, func(t *testing.T) {
				rec := serve(t, node, request{Method: http.MethodPost, Path: r.path, Body: r.body(t, validItem()),
					Header: asAcme("Idempotency-Key", key)})
				code, _ := requireError(t, rec, r.path, http.StatusBadRequest)
				require.Equal(t, "invalid_idempotency_key", code)
			})
		}
	}
	require.Zero(t, countStoredMessages(t, node))
}

func TestIdempotencyKeyMaxLength(t *testing.T) {
	node := newTestNode(t)
	rec := serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/messages", Body: sendRoutes[3].body(t, validItem()),
		Header: asAcme("Idempotency-Key", strings.Repeat("k", 255))})
	require.Equal(t, http.StatusAccepted, rec.Code, "body: %s", rec.Body)
}

func TestClosedStoreUnavailable(t *testing.T) {
	node := newTestNode(t)
	id := sendV1(t, node, "775265496")
	require.NoError(t, node.store.Close())

	for _, r := range sendRoutes {
		t.Run(r.name, func(t *testing.T) {
			rec := serve(t, node, request{Method: http.MethodPost, Path: r.path, Header: asAcme(), Body: r.body(t, validItem())})
			requireError(t, rec, r.path, http.StatusServiceUnavailable)
			require.NotEmpty(t, rec.Header().Get("Retry-After"))
			secs, err := strconv.Atoi(rec.Header().Get("Retry-After"))
			require.NoError(t, err)
			require.Positive(t, secs)
			require.NotContains(t, rec.Body.String(), `"id"`)
			require.NotContains(t, rec.Body.String(), `"ids"`)
		})
	}
	for _, path := range []string{"/api/v1/messages/" + id, "/api/app/message/message-by-id?messageId=" + id} {
		rec := serve(t, node, request{Method: http.MethodGet, Path: path, Header: asAcme()})
		requireError(t, rec, path, http.StatusServiceUnavailable)
		require.NotEmpty(t, rec.Header().Get("Retry-After"))
	}
}

func TestShutdownUnavailable(t *testing.T) {
	node := newTestNode(t)
	require.NoError(t, node.Shutdown(context.Background()))
	for _, r := range sendRoutes {
		t.Run(r.name, func(t *testing.T) {
			rec := serve(t, node, request{Method: http.MethodPost, Path: r.path, Header: asAcme(), Body: r.body(t, validItem())})
			code, _ := requireError(t, rec, r.path, http.StatusServiceUnavailable)
			require.Equal(t, "shutting_down", code)
			require.NotEmpty(t, rec.Header().Get("Retry-After"))
		})
	}
}

func TestHealth(t *testing.T) {
	node := newTestNode(t)
	live := serve(t, node, request{Method: http.MethodGet, Path: "/health/live"})
	require.Equal(t, http.StatusOK, live.Code, "body: %s", live.Body)
	ready := serve(t, node, request{Method: http.MethodGet, Path: "/health/ready"})
	require.Equal(t, http.StatusOK, ready.Code, "body: %s", ready.Body)
	require.JSONEq(t, `{"status": "ready"}`, ready.Body.String())

	require.NoError(t, node.Shutdown(context.Background()))

	live = serve(t, node, request{Method: http.MethodGet, Path: "/health/live"})
	require.Equal(t, http.StatusOK, live.Code, "body: %s", live.Body)
	ready = serve(t, node, request{Method: http.MethodGet, Path: "/health/ready"})
	require.Equal(t, http.StatusServiceUnavailable, ready.Code, "body: %s", ready.Body)
	var out struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons"`
	}
	decodeStrict(t, ready.Body.Bytes(), &out)
	require.Equal(t, "not_ready", out.Status)
	require.NotEmpty(t, out.Reasons)
	require.Contains(t, out.Reasons[0], "draining")
}

func TestUnknownRouteNotFound(t *testing.T) {
	node := newTestNode(t)
	cases := []struct {
		name   string
		method string
		path   string
		status int
	}{
		{"root", http.MethodGet, "/nope", 404},
		{"v1", http.MethodGet, "/api/v1/nope", 404},
		{"v1-deep", http.MethodPost, "/api/v1/nope/extra", 404},
		{"compat", http.MethodGet, "/api/app/other", 404},
		{"compat-message", http.MethodPost, "/api/app/message/nope", 404},
		{"compat-upper", http.MethodPost, "/API/APP/MESSAGE/NOPE", 404},
		{"v1-wrong-method", http.MethodDelete, "/api/v1/messages", 405},
		{"compat-wrong-method", http.MethodGet, "/api/app/message/send-one-way-message", 405},
	}
	for _, tc := range cases {
		for _, creds := range []string{"with-key", "without-key"} {
			t.Run(tc.name+"/"+creds, func(t *testing.T) {
				h := asAcme()
				if creds == "without-key" {
					h = nil
				}
				rec := serve(t, node, request{Method: tc.method, Path: tc.path, Header: h})
				code, _ := requireError(t, rec, tc.path, tc.status)
				require.NotEmpty(t, code)
				if tc.status == http.StatusMethodNotAllowed {
					require.NotEmpty(t, rec.Header().Get("Allow"))
				}
			})
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	node := newTestNode(t)
	rec := serve(t, node, request{Method: http.MethodGet, Path: "/openapi.json"})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/json", mediaType(rec.Header().Get("Content-Type")))
	require.Equal(t, openAPIDoc, rec.Body.Bytes())
}

// TestLoopbackServerRoundTrip runs the node's handler behind a real HTTP
// server on 127.0.0.1, so that connection handling and body limits are
// those of net/http.
func TestLoopbackServerRoundTrip(t *testing.T) {
	node := newTestNode(t)
	srv := httptest.NewServer(node.echo)
	t.Cleanup(srv.Close)

	post := func(path, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("X-Api-Key", acmeKey)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}

	resp := post("/api/v1/messages", `{"recipientPhoneNumber": "775265496", "messageContent": "hi"}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	location := resp.Header.Get("Location")

	req, err := http.NewRequest(http.MethodGet, srv.URL+location, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+mintClientToken(t, "acme"))
	get, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer get.Body.Close()
	require.Equal(t, http.StatusOK, get.StatusCode)

	big := `{"recipientPhoneNumber": "775265496", "messageContent": "` +
		strings.Repeat("x", 2*int(node.cfg.HTTP.MaxBodyBytes)) + `"}`
	resp = post("/api/app/message/send-one-way-message", big)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var e abpError
	decodeStrict(t, b, &e)
	require.Equal(t, "body_too_large", e.Error.Code)
}
