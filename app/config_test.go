package app

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// writeConfigFile writes content to a config file in t.TempDir and returns
// its path.
func writeConfigFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(readDefaults(t), "", nil)
	require.NoError(t, err)
	require.Equal(t, "info", cfg.Log.Level)
	require.Equal(t, "json", cfg.Log.Format)
	require.Equal(t, "127.0.0.1:8080", cfg.HTTP.Listen)
	require.EqualValues(t, 65536, cfg.HTTP.MaxBodyBytes)
	require.Equal(t, 5*time.Second, cfg.HTTP.ReadHeaderTimeout)
	require.Equal(t, "./data", cfg.Storage.Dir)
	require.Equal(t, 24*time.Hour, cfg.Storage.IdempotencyTTL)
	require.Equal(t, "967", cfg.Phone.CountryCode)
	require.Equal(t, `^(77|78|70|73|71)\d{7}$`, cfg.Phone.LocalPattern)
	require.Empty(t, cfg.Auth.JWT.HS256Secret)
	require.Equal(t, 30*time.Second, cfg.Auth.JWT.Leeway)
	require.Equal(t, "phone_number", cfg.Auth.JWT.PhoneClaim)
	require.Empty(t, cfg.Auth.Clients)
	require.Equal(t, "/online-mobile-user", cfg.Hub.Path)
	require.Empty(t, cfg.Hub.AllowedOrigins)
}

func TestLoadConfigFileKeepsOtherDefaults(t *testing.T) {
	path := writeConfigFile(t, "http:\n  listen: \"127.0.0.1:9090\"\n")
	cfg, err := LoadConfig(readDefaults(t), path, nil)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9090", cfg.HTTP.Listen)
	require.EqualValues(t, 65536, cfg.HTTP.MaxBodyBytes, "sibling key keeps its default")
	require.Equal(t, 120*time.Second, cfg.HTTP.IdleTimeout, "sibling key keeps its default")
	require.Equal(t, "967", cfg.Phone.CountryCode, "other section keeps its default")
}

func TestLoadConfigEmptyFile(t *testing.T) {
	cfg, err := LoadConfig(readDefaults(t), writeConfigFile(t, ""), nil)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", cfg.HTTP.Listen)
}

func TestLoadConfigMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	_, err := LoadConfig(readDefaults(t), missing, nil)
	require.ErrorContains(t, err, missing)
}

func TestLoadConfigEnvOverridesFile(t *testing.T) {
	path := writeConfigFile(t, "http:\n  listen: \"127.0.0.1:9090\"\n")
	env := []string{"PATH=/usr/bin", "ESH3ARTECH_HTTP_LISTEN=0.0.0.0:7070"}
	cfg, err := LoadConfig(readDefaults(t), path, env)
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:7070", cfg.HTTP.Listen)

	cfg, err = LoadConfig(readDefaults(t), "", env)
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:7070", cfg.HTTP.Listen, "env overrides the default")
}

func TestLoadConfigEnvTypedValues(t *testing.T) {
	env := []string{
		"ESH3ARTECH_HTTP_MAX_BODY_BYTES=131072",
		"ESH3ARTECH_HTTP_IDLE_TIMEOUT=90s",
		"ESH3ARTECH_STORAGE_MIN_FREE_DISK=0",
	}
	cfg, err := LoadConfig(readDefaults(t), "", env)
	require.NoError(t, err)
	require.EqualValues(t, 131072, cfg.HTTP.MaxBodyBytes)
	require.Equal(t, 90*time.Second, cfg.HTTP.IdleTimeout)
	require.Zero(t, cfg.Storage.MinFreeDisk)
}

func TestLoadConfigEnvListAsJSON(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	env := []string{
		`ESH3ARTECH_AUTH_CLIENTS=[{"id": "acme", "api_key_sha256": "` + hash + `"}, {"id": "ops", "api_key_sha256": "` + hash[:62] + `cd", "admin": true}]`,
		`ESH3ARTECH_HUB_ALLOWED_ORIGINS=["https://a.example", "https://b.example"]`,
	}
	cfg, err := LoadConfig(readDefaults(t), "", env)
	require.NoError(t, err)
	require.Equal(t, []ClientConfig{
		{ID: "acme", APIKeySHA256: hash},
		{ID: "ops", APIKeySHA256: hash[:62] + "cd", Admin: true},
	}, cfg.Auth.Clients)
	require.Equal(t, []string{"https://a.example", "https://b.example"}, cfg.Hub.AllowedOrigins)
}

func TestLoadConfigFileListReplacesDefault(t *testing.T) {
	path := writeConfigFile(t, "hub:\n  allowed_origins: [\"https://a.example\"]\n")
	cfg, err := LoadConfig(readDefaults(t), path, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"https://a.example"}, cfg.Hub.AllowedOrigins)
	require.Equal(t, "/online-mobile-user", cfg.Hub.Path)
}

// TestLoadConfigEnvStringVerbatim checks that string keys set through the
// environment are not parsed as YAML, which would drop a value starting
// with '#' and turn digits into a number.
func TestLoadConfigEnvStringVerbatim(t *testing.T) {
	secrets := []string{
		"#" + strings.Repeat("s", 40),
		"key: value " + strings.Repeat("s", 40),
		strings.Repeat("9", 40),
		"[" + strings.Repeat("s", 40),
		"'" + strings.Repeat("s", 40),
	}
	for _, secret := range secrets {
		t.Run(secret[:4], func(t *testing.T) {
			cfg, err := LoadConfig(readDefaults(t), "", []string{"ESH3ARTECH_AUTH_JWT_HS256_SECRET=" + secret})
			require.NoError(t, err)
			require.Equal(t, secret, cfg.Auth.JWT.HS256Secret)
		})
	}
	cfg, err := LoadConfig(readDefaults(t), "", []string{"ESH3ARTECH_PHONE_COUNTRY_CODE=0044"})
	require.NoError(t, err)
	require.Equal(t, "0044", cfg.Phone.CountryCode)
}

func TestLoadConfigUnknownKey(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  string
		want string
	}{
		{"file-nested", "http:\n  listn: \"127.0.0.1:1\"\n", "", "http.listn"},
		{"file-top-level", "telemetry:\n  listen: \"127.0.0.1:1\"\n", "", "telemetry"},
		{"file-deep", "auth:\n  jwt:\n    hs265_secret: x\n", "", "auth.jwt.hs265_secret"},
		{"file-client-field", "auth:\n  clients: [{id: acme, api_key: x}]\n", "", "auth.clients"},
		{"env", "", "ESH3ARTECH_HTTP_LISTN=127.0.0.1:1", "ESH3ARTECH_HTTP_LISTN"},
		{"env-section", "", "ESH3ARTECH_HTTP=x", "ESH3ARTECH_HTTP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeConfigFile(t, tc.file)
			}
			var env []string
			if tc.env != "" {
				env = []string{tc.env}
			}
			_, err := LoadConfig(readDefaults(t), path, env)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestLoadConfigInvalidValue(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  string
		want string
	}{
		{"listen-no-port", "http:\n  listen: localhost\n", "", "http.listen"},
		{"listen-env", "", "ESH3ARTECH_HTTP_LISTEN=127.0.0.1", "http.listen"},
		{"listen-empty", "http:\n  listen: \"\"\n", "", "http.listen"},
		{"secret-short", "auth:\n  jwt:\n    hs256_secret: short\n", "", "auth.jwt.hs256_secret"},
		{"secret-short-env", "", "ESH3ARTECH_AUTH_JWT_HS256_SECRET=" + strings.Repeat("s", 31), "auth.jwt.hs256_secret"},
		{"client-hash", "auth:\n  clients: [{id: acme, api_key_sha256: abc}]\n", "", "auth.clients[0].api_key_sha256"},
		{"client-hash-env", "", `ESH3ARTECH_AUTH_CLIENTS=[{"id": "acme", "api_key_sha256": "zz"}]`, "auth.clients[0].api_key_sha256"},
		{"client-id", "auth:\n  clients: [{id: \"a b\", api_key_sha256: " + strings.Repeat("ab", 32) + "}]\n", "", "auth.clients[0].id"},
		{"log-level", "log:\n  level: verbose\n", "", "log.level"},
		{"log-level-env", "", "ESH3ARTECH_LOG_LEVEL=trace", "log.level"},
		{"duration-text", "http:\n  idle_timeout: soon\n", "", "http.idle_timeout"},
		{"duration-number", "http:\n  idle_timeout: 120\n", "", "http.idle_timeout"},
		{"duration-env", "", "ESH3ARTECH_STORAGE_IDEMPOTENCY_TTL=[1]", "storage.idempotency_ttl"},
		{"duration-zero", "hub:\n  handshake_timeout: 0s\n", "", "hub.handshake_timeout"},
		{"int-text", "http:\n  max_body_bytes: big\n", "", "http.max_body_bytes"},
		{"body-limit-small", "http:\n  max_body_bytes: 10\n", "", "http.max_body_bytes"},
		{"country-code", "phone:\n  country_code: \"+967\"\n", "", "phone.country_code"},
		{"local-pattern", "phone:\n  local_pattern: \"(77\"\n", "", "phone.local_pattern"},
		{"section-scalar", "http: 8080\n", "", "http"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeConfigFile(t, tc.file)
			}
			var env []string
			if tc.env != "" {
				env = []string{tc.env}
			}
			_, err := LoadConfig(readDefaults(t), path, env)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestResolveSecretGeneratedOnce(t *testing.T) {
	cfg := &Config{Storage: StorageConfig{Dir: filepath.Join(t.TempDir(), "data")}}
	first, created, err := ResolveSecret(cfg)
	require.NoError(t, err)
	require.True(t, created)
	require.GreaterOrEqual(t, len(first), 32)

	info, err := os.Stat(filepath.Join(cfg.Storage.Dir, secretFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	second, created, err := ResolveSecret(cfg)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first, second)
}

func TestResolveSecretConfigured(t *testing.T) {
	secret := strings.Repeat("c", 32)
	cfg := &Config{Storage: StorageConfig{Dir: t.TempDir()}, Auth: AuthConfig{JWT: JWTConfig{HS256Secret: secret}}}
	got, created, err := ResolveSecret(cfg)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, secret, got)
	require.NoFileExists(t, filepath.Join(cfg.Storage.Dir, secretFile))
}

func TestResolveSecretShortFile(t *testing.T) {
	cfg := &Config{Storage: StorageConfig{Dir: t.TempDir()}}
	path := filepath.Join(cfg.Storage.Dir, secretFile)
	require.NoError(t, os.WriteFile(path, []byte("short\n"), 0o600))
	_, _, err := ResolveSecret(cfg)
	require.ErrorContains(t, err, path)
}

func TestResolveSecretConcurrent(t *testing.T) {
	cfg := &Config{Storage: StorageConfig{Dir: filepath.Join(t.TempDir(), "data")}}
	const callers = 8
	secrets := make([]string, callers)
	created := make([]bool, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			secrets[i], created[i], errs[i] = ResolveSecret(cfg)
		})
	}
	wg.Wait()
	creators := 0
	for i := range callers {
		require.NoError(t, errs[i])
		require.Equal(t, secrets[0], secrets[i], "caller %d", i)
		if created[i] {
			creators++
		}
	}
	require.Equal(t, 1, creators, "exactly one caller creates the secret")

	stored, err := os.ReadFile(filepath.Join(cfg.Storage.Dir, secretFile))
	require.NoError(t, err)
	require.Equal(t, secrets[0], strings.TrimSpace(string(stored)))
}

func TestResolveClientsGeneratedOnce(t *testing.T) {
	cfg := &Config{Storage: StorageConfig{Dir: filepath.Join(t.TempDir(), "data")}}
	clients, gen, err := ResolveClients(cfg)
	require.NoError(t, err)
	require.NotNil(t, gen)
	require.NotEmpty(t, gen.Key)
	require.Equal(t, []ClientConfig{gen.ClientConfig}, clients)
	sum := sha256.Sum256([]byte(gen.Key))
	require.Equal(t, hex.EncodeToString(sum[:]), gen.APIKeySHA256)

	path := filepath.Join(cfg.Storage.Dir, clientsFile)
	stored, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(stored), gen.Key, "the key itself is never stored")
	require.Contains(t, string(stored), gen.APIKeySHA256)
	var onDisk []map[string]any
	require.NoError(t, yaml.Unmarshal(stored, &onDisk))
	require.Len(t, onDisk, 1)
	keys := make([]string, 0, len(onDisk[0]))
	for k := range onDisk[0] {
		keys = append(keys, k)
	}
	require.ElementsMatch(t, []string{"id", "api_key_sha256", "admin"}, keys)
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	again, gen, err := ResolveClients(cfg)
	require.NoError(t, err)
	require.Nil(t, gen, "no client is generated on the second call")
	require.Equal(t, clients, again)
}

func TestResolveClientsConfigured(t *testing.T) {
	configured := []ClientConfig{{ID: "acme", APIKeySHA256: sha256Hex(acmeKey)}}
	cfg := &Config{Storage: StorageConfig{Dir: t.TempDir()}, Auth: AuthConfig{Clients: configured}}
	clients, gen, err := ResolveClients(cfg)
	require.NoError(t, err)
	require.Nil(t, gen)
	require.Equal(t, configured, clients)
	require.NoFileExists(t, filepath.Join(cfg.Storage.Dir, clientsFile))
}

func TestResolveClientsInvalidFile(t *testing.T) {
	cfg := &Config{Storage: StorageConfig{Dir: t.TempDir()}}
	path := filepath.Join(cfg.Storage.Dir, clientsFile)
	require.NoError(t, os.WriteFile(path, []byte("- id: acme\n  api_key_sha256: nothex\n"), 0o600))
	_, _, err := ResolveClients(cfg)
	require.ErrorContains(t, err, path)
	require.ErrorContains(t, err, "api_key_sha256")
}
