package app

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// apiRoutes are the business API's routes, with a request that passes
// validation once authenticated.
var apiRoutes = []struct {
	name   string
	method string
	path   string
	body   string
}{
	{"compat-send", http.MethodPost, "/api/app/message/send-one-way-message",
		`{"recipientPhoneNumber": "775265496", "messageContent": "hi"}`},
	{"compat-ingestion-send", http.MethodPost, "/api/app/message/ingestion-send-one-way-message",
		`{"recipientPhoneNumber": "775265496", "messageContent": "hi"}`},
	{"compat-batch", http.MethodPost, "/api/app/message/ingestion-batch-message",
		`{"batchMessages": [{"mobileNumber": "775265496", "messageContent": "hi"}]}`},
	{"compat-get", http.MethodGet, "/api/app/message/message-by-id?messageId=0192f0c4-6b1e-7c39-9a4e-2f1d8c3b5a60", ""},
	{"v1-send", http.MethodPost, "/api/v1/messages",
		`{"recipientPhoneNumber": "775265496", "messageContent": "hi"}`},
	{"v1-batch", http.MethodPost, "/api/v1/messages/batch",
		`{"messages": [{"recipientPhoneNumber": "775265496", "messageContent": "hi"}]}`},
	{"v1-get", http.MethodGet, "/api/v1/messages/0192f0c4-6b1e-7c39-9a4e-2f1d8c3b5a60", ""},
}

func TestAuthRejected(t *testing.T) {
	node := newTestNode(t)
	now := time.Now()
	hs256 := func(claims jwt.MapClaims) string {
		return signToken(t, jwt.SigningMethodHS256, []byte(testSecret), claims)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	valid := jwt.MapClaims{"sub": "acme", "exp": now.Add(time.Hour).Unix()}

	cases := []struct {
		name   string
		header map[string]string
	}{
		{"none", nil},
		{"unknown-api-key", map[string]string{"X-Api-Key": "not-a-key"}},
		{"empty-bearer", map[string]string{"Authorization": "Bearer "}},
		{"basic", map[string]string{"Authorization": "Basic YWNtZTpzZWNyZXQ="}},
		{"garbage-token", bearerHeader("not.a.jwt")},
		{"wrong-signature", bearerHeader(signToken(t, jwt.SigningMethodHS256,
			[]byte("another-secret-of-at-least-32-bytes!"), valid))},
		{"alg-none", bearerHeader(signToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid))},
		{"alg-rs256", bearerHeader(signToken(t, jwt.SigningMethodRS256, rsaKey, valid))},
		{"alg-hs512", bearerHeader(signToken(t, jwt.SigningMethodHS512, []byte(testSecret), valid))},
		{"alg-hs384", bearerHeader(signToken(t, jwt.SigningMethodHS384, []byte(testSecret), valid))},
		{"missing-exp", bearerHeader(hs256(jwt.MapClaims{"sub": "acme"}))},
		{"expired", bearerHeader(hs256(jwt.MapClaims{"sub": "acme", "exp": now.Add(-time.Hour).Unix()}))},
		{"not-yet-valid", bearerHeader(hs256(jwt.MapClaims{"sub": "acme", "exp": now.Add(2 * time.Hour).Unix(),
			"nbf": now.Add(time.Hour).Unix()}))},
		{"unknown-sub", bearerHeader(hs256(jwt.MapClaims{"sub": "initech", "exp": now.Add(time.Hour).Unix()}))},
		{"missing-sub", bearerHeader(hs256(jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}))},
		{"mobile-token", bearerHeader(hs256(jwt.MapClaims{"sub": "acme", "phone_number": "967775265496",
			"exp": now.Add(time.Hour).Unix()}))},
	}
	for _, r := range apiRoutes {
		for _, tc := range cases {
			t.Run(r.name+"/"+tc.name, func(t *testing.T) {
				rec := serve(t, node, request{Method: r.method, Path: r.path, Body: r.body, Header: tc.header})
				code, _ := requireError(t, rec, r.path, http.StatusUnauthorized)
				require.Equal(t, "unauthenticated", code)
				require.Contains(t, rec.Header().Get("WWW-Authenticate"), "Bearer")
			})
		}
	}
	require.Zero(t, countStoredMessages(t, node))
}

func TestAuthAccepted(t *testing.T) {
	node := newTestNode(t)
	now := time.Now()
	cases := []struct {
		name   string
		header map[string]string
	}{
		{"api-key", asAcme()},
		{"bearer", bearerHeader(mintClientToken(t, "acme"))},
		{"bearer-lowercase-scheme", map[string]string{"Authorization": "bearer " + mintClientToken(t, "acme")}},
		// An exp that passed less than auth.jwt.leeway (30s) ago is accepted.
		{"expired-within-leeway", bearerHeader(signToken(t, jwt.SigningMethodHS256, []byte(testSecret),
			jwt.MapClaims{"sub": "acme", "exp": now.Add(-time.Second).Unix()}))},
	}
	for _, r := range apiRoutes {
		for _, tc := range cases {
			t.Run(r.name+"/"+tc.name, func(t *testing.T) {
				rec := serve(t, node, request{Method: r.method, Path: r.path, Body: r.body, Header: tc.header})
				require.NotEqual(t, http.StatusUnauthorized, rec.Code, "body: %s", rec.Body)
				if r.method == http.MethodGet {
					// The id in apiRoutes is not stored.
					require.Equal(t, http.StatusNotFound, rec.Code, "body: %s", rec.Body)
					return
				}
				require.Less(t, rec.Code, 300, "body: %s", rec.Body)
			})
		}
	}
}

// TestAuthGeneratedClient checks that the client created on first start
// authenticates with the key that ResolveClients returned once.
func TestAuthGeneratedClient(t *testing.T) {
	cfg := newTestConfig(t, "ESH3ARTECH_AUTH_CLIENTS=[]")
	clients, gen, err := ResolveClients(cfg)
	require.NoError(t, err)
	require.NotNil(t, gen)
	node, err := NewNode(cfg, zap.NewNop(), cfg.Auth.JWT.HS256Secret, clients)
	require.NoError(t, err)
	t.Cleanup(func() { _ = node.Shutdown(context.Background()) })

	rec := serve(t, node, request{
		Method: http.MethodPost, Path: "/api/v1/messages", Header: map[string]string{"X-Api-Key": gen.Key},
		Body: `{"recipientPhoneNumber": "775265496", "messageContent": "hi"}`,
	})
	require.Equal(t, http.StatusAccepted, rec.Code, "body: %s", rec.Body)
	require.FileExists(t, filepath.Join(cfg.Storage.Dir, clientsFile))
}

func TestAuthMobile(t *testing.T) {
	cfg := newTestConfig(t)
	phones, err := NewPhoneNormalizer(cfg.Phone)
	require.NoError(t, err)
	auth, err := NewAuthenticator(testSecret, cfg.Auth.JWT, cfg.Auth.Clients, phones)
	require.NoError(t, err)
	exp := time.Now().Add(time.Hour).Unix()
	mobile := signToken(t, jwt.SigningMethodHS256, []byte(testSecret),
		jwt.MapClaims{"phone_number": "+967775265496", "exp": exp})

	t.Run("query", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/online-mobile-user?access_token="+mobile, nil)
		phone, err := auth.Mobile(r)
		require.NoError(t, err)
		require.Equal(t, "967775265496", phone)
	})
	t.Run("bearer", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/online-mobile-user", nil)
		r.Header.Set("Authorization", "Bearer "+mobile)
		phone, err := auth.Mobile(r)
		require.NoError(t, err)
		require.Equal(t, "967775265496", phone)
	})

	rejected := map[string]string{
		"business-token": mintClientToken(t, "acme"),
		"invalid-phone": signToken(t, jwt.SigningMethodHS256, []byte(testSecret),
			jwt.MapClaims{"phone_number": "12345", "exp": exp}),
		"missing-exp": signToken(t, jwt.SigningMethodHS256, []byte(testSecret),
			jwt.MapClaims{"phone_number": "967775265496"}),
		"alg-hs512": signToken(t, jwt.SigningMethodHS512, []byte(testSecret),
			jwt.MapClaims{"phone_number": "967775265496", "exp": exp}),
	}
	for name, tok := range rejected {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/online-mobile-user?access_token="+tok, nil)
			_, err := auth.Mobile(r)
			require.ErrorIs(t, err, ErrUnauthenticated)
		})
	}
	t.Run("no-token", func(t *testing.T) {
		_, err := auth.Mobile(httptest.NewRequest(http.MethodGet, "/online-mobile-user", nil))
		require.ErrorIs(t, err, ErrUnauthenticated)
	})
}
