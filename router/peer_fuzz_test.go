package router

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/storage"
)

// FuzzPeerHandler sends arbitrary bodies to every peer route with a valid
// token. The handler must never panic and must answer a client error for
// input it cannot use, never a server error for a malformed body.
func FuzzPeerHandler(f *testing.F) {
	seeds := []string{
		``, `{}`, `null`, `[]`, `{"messages": null}`, `{"messages": [null]}`,
		`{"messages": [{"id": "01a241cd-c219-795b-a590-7d4d06ef9e66", "r": "967775265496", "st": 4}]}`,
		`{"items": [{"connId": "x", "messages": []}]}`, `{"items": [{"connId": "x", "pending": true}]}`,
		`{"user": "967775265496", "connId": "c1", "messageId": "not-a-uuid"}`,
		`{"user": "", "connId": ""}`, `{"messages": [{"id": "zz"}]}`, "\x00\xff",
	}
	routes := []string{peerPathForward, peerPathHandoff, peerPathAttach, peerPathDetach,
		peerPathPush, peerPathAck}
	for _, s := range seeds {
		for i := range routes {
			f.Add(uint8(i), s)
		}
	}
	s, err := storage.Open(f.TempDir(), storage.Options{})
	require.NoError(f, err)
	f.Cleanup(func() { _ = s.Close() })
	r := New(Config{PeerSecret: []byte("fuzz-secret-0123456789abcdef0123"), RetryBase: time.Hour}, s)
	r.Start(newFakeHub())
	f.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	h := r.PeerHandler()
	token := PeerToken([]byte("fuzz-secret-0123456789abcdef0123"))

	f.Fuzz(func(t *testing.T, route uint8, body string) {
		path := routes[int(route)%len(routes)]
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set(headerPeerToken, token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.NotEqual(t, http.StatusInternalServerError, rec.Code, "body %q", body)
	})
}

func TestPeerHandlerRejectsBadToken(t *testing.T) {
	s, err := storage.Open(t.TempDir(), storage.Options{})
	require.NoError(t, err)
	defer s.Close()
	r := New(Config{PeerSecret: []byte("secret-0123456789abcdef0123456789")}, s)
	for _, token := range []string{"", "wrong", PeerToken([]byte("another-secret-0123456789abcdef"))} {
		req := httptest.NewRequest(http.MethodPost, peerPathForward, strings.NewReader(`{}`))
		req.Header.Set(headerPeerToken, token)
		rec := httptest.NewRecorder()
		r.PeerHandler().ServeHTTP(rec, req)
		require.Equal(t, http.StatusUnauthorized, rec.Code, "token %q", token)
	}
}

// ownerOf is a Placement where node "other" owns every recipient.
type ownerOf struct{ self, owner string }

func (p ownerOf) Owner(string) (string, bool)    { return p.owner, p.owner == p.self }
func (p ownerOf) Self() string                   { return p.self }
func (p ownerOf) Nodes() []string                { return []string{p.self, p.owner} }
func (p ownerOf) PeerAddr(string) (string, bool) { return "", false }

func TestPeerForwardRejectedByNonOwner(t *testing.T) {
	s, err := storage.Open(t.TempDir(), storage.Options{})
	require.NoError(t, err)
	defer s.Close()
	secret := []byte("secret-0123456789abcdef0123456789")
	r := New(Config{PeerSecret: secret, Placement: ownerOf{self: "a", owner: "b"}}, s)
	id, err := storage.NewID()
	require.NoError(t, err)
	body := `{"messages": [{"id": "` + id.String() + `", "r": "967775265496", "p": 2, "st": 4, "b": "x"}]}`
	for _, path := range []string{peerPathForward, peerPathHandoff} {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set(headerPeerToken, PeerToken(secret))
		rec := httptest.NewRecorder()
		r.PeerHandler().ServeHTTP(rec, req)
		require.Equal(t, http.StatusConflict, rec.Code, path)
	}
	_, err = s.Get(context.Background(), id)
	require.ErrorIs(t, err, storage.ErrNotFound, "a node that does not own the recipient stores nothing")

	req := httptest.NewRequest(http.MethodPost, peerPathAttach,
		strings.NewReader(`{"user": "967775265496", "connId": "c1"}`))
	req.Header.Set(headerPeerToken, PeerToken(secret))
	rec := httptest.NewRecorder()
	r.PeerHandler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusConflict, rec.Code)
}
