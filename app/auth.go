package app

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrUnauthenticated is returned for a request without valid credentials.
var ErrUnauthenticated = errors.New("invalid credentials")

// Principal is an authenticated business client.
type Principal struct {
	ClientID string
	Admin    bool
}

// Authenticator checks the credentials of business clients (API keys and
// JWTs) and of mobile users (JWTs with a phone number claim).
type Authenticator struct {
	secret     []byte
	leeway     time.Duration
	phoneClaim string
	phones     *PhoneNormalizer
	clients    atomic.Pointer[clientSet]
}

type clientSet struct {
	byHash map[[32]byte]ClientConfig
	byID   map[string]ClientConfig
}

// NewAuthenticator returns an Authenticator for the given secret and
// clients.
func NewAuthenticator(secret string, jc JWTConfig, clients []ClientConfig,
	phones *PhoneNormalizer) (*Authenticator, error) {
	a := &Authenticator{
		secret: []byte(secret), leeway: jc.Leeway, phoneClaim: jc.PhoneClaim, phones: phones,
	}
	if err := a.SetClients(clients); err != nil {
		return nil, err
	}
	return a, nil
}

// SetClients replaces the set of business clients.
func (a *Authenticator) SetClients(clients []ClientConfig) error {
	set := &clientSet{byHash: map[[32]byte]ClientConfig{}, byID: map[string]ClientConfig{}}
	for _, c := range clients {
		var h [32]byte
		b, err := hex.DecodeString(c.APIKeySHA256)
		if err != nil || len(b) != len(h) {
			return fmt.Errorf("auth: client %s: api_key_sha256 is not 64 hex digits", c.ID)
		}
		copy(h[:], b)
		set.byHash[h] = c
		set.byID[c.ID] = c
	}
	a.clients.Store(set)
	return nil
}

// Client returns the configured client with the given id.
func (a *Authenticator) Client(id string) (ClientConfig, bool) {
	c, ok := a.clients.Load().byID[id]
	return c, ok
}

// Business authenticates a business client by its X-Api-Key header or its
// bearer JWT, whose subject must be a configured client.
func (a *Authenticator) Business(r *http.Request) (Principal, error) {
	if key := r.Header.Get("X-Api-Key"); key != "" {
		return a.apiKey(key)
	}
	tok, ok := bearer(r)
	if !ok {
		return Principal{}, fmt.Errorf("%w: send an X-Api-Key header or an "+
			"Authorization: Bearer token", ErrUnauthenticated)
	}
	claims, err := a.parse(tok)
	if err != nil {
		return Principal{}, err
	}
	if _, isMobile := claims[a.phoneClaim]; isMobile {
		return Principal{}, fmt.Errorf("%w: a mobile user's token cannot call the business API",
			ErrUnauthenticated)
	}
	sub, _ := claims.GetSubject()
	c, ok := a.Client(sub)
	if !ok {
		return Principal{}, fmt.Errorf("%w: token subject %q is not a configured client",
			ErrUnauthenticated, sub)
	}
	return Principal{ClientID: c.ID, Admin: c.Admin}, nil
}

func (a *Authenticator) apiKey(key string) (Principal, error) {
	sum := sha256.Sum256([]byte(key))
	c, ok := a.clients.Load().byHash[sum]
	if !ok {
		return Principal{}, fmt.Errorf("%w: unknown API key", ErrUnauthenticated)
	}
	// The map lookup already matched on the digest; comparing the digests
	// again in constant time keeps the check free of early exits.
	want, _ := hex.DecodeString(c.APIKeySHA256)
	if subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return Principal{}, fmt.Errorf("%w: unknown API key", ErrUnauthenticated)
	}
	return Principal{ClientID: c.ID, Admin: c.Admin}, nil
}

// Mobile authenticates a mobile user by a JWT in the access_token query
// parameter or the bearer header, and returns its normalised phone number.
func (a *Authenticator) Mobile(r *http.Request) (string, error) {
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		var ok bool
		if tok, ok = bearer(r); !ok {
			return "", fmt.Errorf("%w: send the token as access_token or as a bearer header",
				ErrUnauthenticated)
		}
	}
	claims, err := a.parse(tok)
	if err != nil {
		return "", err
	}
	raw, _ := claims[a.phoneClaim].(string)
	if raw == "" {
		return "", fmt.Errorf("%w: token has no %s claim", ErrUnauthenticated, a.phoneClaim)
	}
	phone, err := a.phones.Normalize(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %s claim: %w", ErrUnauthenticated, a.phoneClaim, err)
	}
	return phone, nil
}

func (a *Authenticator) parse(tok string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) {
		return a.secret, nil
	}, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(), jwt.WithLeeway(a.leeway))
	if err != nil {
		return nil, fmt.Errorf("%w: invalid token: %w", ErrUnauthenticated, err)
	}
	return claims, nil
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// MintToken returns an HS256 JWT carrying claims, issued now and expiring
// after ttl.
func MintToken(secret string, claims map[string]any, ttl time.Duration) (string, error) {
	now := time.Now()
	mc := jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	for k, v := range claims {
		mc[k] = v
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, mc).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return tok, nil
}
