package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// Credentials of the test nodes. Neither client is an admin, so each can
// read only its own messages.
const (
	testSecret = "test-hs256-secret-that-is-at-least-32-bytes"
	acmeKey    = "acme-test-api-key"
	globexKey  = "globex-test-api-key"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// readDefaults returns the repository's config.yaml, the defaults that the
// binary embeds.
func readDefaults(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../config.yaml")
	require.NoError(t, err)
	return b
}

// newTestConfig loads the defaults with a data folder in t.TempDir, the
// test secret and the clients acme and globex, then applies extraEnv.
func newTestConfig(t testing.TB, extraEnv ...string) *Config {
	t.Helper()
	clients := fmt.Sprintf(`[{"id": "acme", "api_key_sha256": %q}, {"id": "globex", "api_key_sha256": %q}]`,
		sha256Hex(acmeKey), sha256Hex(globexKey))
	env := []string{
		"ESH3ARTECH_STORAGE_DIR=" + filepath.Join(t.TempDir(), "data"),
		"ESH3ARTECH_STORAGE_MIN_FREE_DISK=0",
		"ESH3ARTECH_HTTP_LISTEN=127.0.0.1:0",
		"ESH3ARTECH_AUTH_JWT_HS256_SECRET=" + testSecret,
		"ESH3ARTECH_AUTH_CLIENTS=" + clients,
	}
	cfg, err := LoadConfig(readDefaults(t), "", append(env, extraEnv...))
	require.NoError(t, err)
	return cfg
}

// newTestNode returns a node with a fresh store that is not listening, so
// tests call its echo instance directly or through httptest. The node is
// shut down when the test ends.
func newTestNode(t testing.TB, extraEnv ...string) *Node {
	t.Helper()
	cfg := newTestConfig(t, extraEnv...)
	node, err := NewNode(cfg, zap.NewNop(), cfg.Auth.JWT.HS256Secret, cfg.Auth.Clients)
	require.NoError(t, err)
	t.Cleanup(func() { _ = node.Shutdown(context.Background()) })
	return node
}

// request is one HTTP request to a test node. Body is sent as
// application/json unless Header sets another Content-Type.
type request struct {
	Method string
	Path   string
	Body   string
	Header map[string]string
}

// serve sends r to the node's echo handler and returns the recorded
// response.
func serve(t testing.TB, node *Node, r request) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req := httptest.NewRequest(r.Method, r.Path, body)
	if r.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	node.echo.ServeHTTP(rec, req)
	return rec
}

// asAcme and asGlobex return the X-Api-Key header of a test client, merged
// with extra header pairs (name, value, name, value ...).
func asAcme(extra ...string) map[string]string {
	return withHeaders("X-Api-Key", acmeKey, extra...)
}

func asGlobex(extra ...string) map[string]string {
	return withHeaders("X-Api-Key", globexKey, extra...)
}

func withHeaders(name, value string, extra ...string) map[string]string {
	h := map[string]string{name: value}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

// decodeStrict decodes b into v, failing on fields that v does not have.
func decodeStrict(t testing.TB, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "body: %s", b)
}

// requireABP checks that rec is an error of the previous service's routes
// with the given status, and returns its body.
func requireABP(t testing.TB, rec *httptest.ResponseRecorder, status int) abpError {
	t.Helper()
	require.Equal(t, status, rec.Code, "body: %s", rec.Body)
	require.Equal(t, "application/json", mediaType(rec.Header().Get("Content-Type")))
	var e abpError
	decodeStrict(t, rec.Body.Bytes(), &e)
	require.NotEmpty(t, e.Error.Code)
	require.NotEmpty(t, e.Error.Message)
	return e
}

// requireProblem checks that rec is an RFC 9457 problem with the given
// status, and returns its body.
func requireProblem(t testing.TB, rec *httptest.ResponseRecorder, status int) problem {
	t.Helper()
	require.Equal(t, status, rec.Code, "body: %s", rec.Body)
	require.Equal(t, "application/problem+json", mediaType(rec.Header().Get("Content-Type")))
	var p problem
	decodeStrict(t, rec.Body.Bytes(), &p)
	require.Equal(t, status, p.Status)
	require.NotEmpty(t, p.Type)
	require.NotEmpty(t, p.Title)
	require.NotEmpty(t, p.Code)
	return p
}

// requireError checks an error response in the shape of the route's family
// and returns its machine-readable code and its human-readable text (for
// validation errors, every field and detail).
func requireError(t testing.TB, rec *httptest.ResponseRecorder, path string, status int) (code, text string) {
	t.Helper()
	if isCompatPath(strings.ToLower(path)) {
		e := requireABP(t, rec, status)
		return e.Error.Code, e.Error.Message + "\n" + e.Error.Details
	}
	p := requireProblem(t, rec, status)
	text = p.Detail
	for _, f := range p.Errors {
		text += "\n" + f.Field + ": " + f.Detail
	}
	return p.Code, text
}

// requireFields checks that an error lists exactly the given fields, in
// either family's shape.
func requireFields(t testing.TB, rec *httptest.ResponseRecorder, path string, fields ...string) {
	t.Helper()
	var got []string
	if isCompatPath(strings.ToLower(path)) {
		var e abpError
		decodeStrict(t, rec.Body.Bytes(), &e)
		for _, v := range e.Error.ValidationErrors {
			got = append(got, v.Members...)
		}
	} else {
		var p problem
		decodeStrict(t, rec.Body.Bytes(), &p)
		for _, f := range p.Errors {
			got = append(got, f.Field)
		}
	}
	require.ElementsMatch(t, fields, got, "body: %s", rec.Body)
}

func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.TrimSpace(mt)
}

// sendV1 posts one valid message as acme and returns its id.
func sendV1(t testing.TB, node *Node, phone string) string {
	t.Helper()
	rec := serve(t, node, request{
		Method: http.MethodPost, Path: "/api/v1/messages", Header: asAcme(),
		Body: fmt.Sprintf(`{"recipientPhoneNumber": %q, "messageContent": "hello"}`, phone),
	})
	require.Equal(t, http.StatusAccepted, rec.Code, "body: %s", rec.Body)
	var out struct {
		ID     string `json:"id"`
		Status int    `json:"status"`
	}
	decodeStrict(t, rec.Body.Bytes(), &out)
	return out.ID
}

// countStoredMessages shuts the node down and counts the message records
// in its store, read directly from Pebble. Message records are the keys
// that start with 'm' (see storage/keys.go).
func countStoredMessages(t testing.TB, node *Node) int {
	t.Helper()
	require.NoError(t, node.Shutdown(context.Background()))
	db, err := pebble.Open(node.cfg.Storage.Dir, &pebble.Options{ReadOnly: true, Logger: testPebbleLogger{t}})
	require.NoError(t, err)
	defer db.Close()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("m"), UpperBound: []byte("n")})
	require.NoError(t, err)
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	require.NoError(t, it.Error())
	return n
}

// testPebbleLogger drops Pebble's informational output and reports its
// errors on t.
type testPebbleLogger struct{ t testing.TB }

func (testPebbleLogger) Infof(string, ...any) {}

func (l testPebbleLogger) Errorf(format string, args ...any) { l.t.Errorf("pebble: "+format, args...) }

func (l testPebbleLogger) Fatalf(format string, args ...any) {
	l.t.Fatalf("pebble: "+format, args...)
}

// signToken signs claims with the given method and key.
func signToken(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return tok
}

// bearerHeader returns an Authorization header carrying tok.
func bearerHeader(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// mintClientToken returns a valid business token for client id.
func mintClientToken(t testing.TB, id string) string {
	t.Helper()
	tok, err := MintToken(testSecret, map[string]any{"sub": id}, time.Hour)
	require.NoError(t, err)
	return tok
}
