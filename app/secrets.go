package app

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Files that a node generates in its data folder when the configuration
// leaves the secret or the clients empty.
const (
	secretFile  = "jwt-secret"
	clientsFile = "clients.yaml"
)

// GeneratedClient is a business client that a node created on its first
// start. Key is set only when the client was created by this call.
type GeneratedClient struct {
	ClientConfig
	Key string
}

// ResolveSecret returns the JWT secret: the configured one, else the one in
// dir, else a new one that it writes to dir. created reports the last case.
func ResolveSecret(c *Config) (secret string, created bool, err error) {
	if c.Auth.JWT.HS256Secret != "" {
		return c.Auth.JWT.HS256Secret, false, nil
	}
	path := filepath.Join(c.Storage.Dir, secretFile)
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return "", false, fmt.Errorf("auth: %s holds %d bytes, fewer than 32; delete it "+
				"to have a new secret generated", path, len(s))
		}
		return s, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("auth: read %s: %w", path, err)
	}
	s, err := randomToken(32)
	if err != nil {
		return "", false, err
	}
	err = writeNew(path, []byte(s+"\n"))
	if errors.Is(err, fs.ErrExist) {
		// Another process (a node or the token command) created it first.
		return ResolveSecret(c)
	}
	if err != nil {
		return "", false, err
	}
	return s, true, nil
}

// ResolveClients returns the business clients: the configured ones, else
// the ones stored in dir, else a new client that it stores in dir (its key
// is returned once, in the GeneratedClient, and never stored).
func ResolveClients(c *Config) ([]ClientConfig, *GeneratedClient, error) {
	if len(c.Auth.Clients) > 0 {
		return c.Auth.Clients, nil, nil
	}
	path := filepath.Join(c.Storage.Dir, clientsFile)
	b, err := os.ReadFile(path)
	if err == nil {
		var stored []ClientConfig
		if err := yaml.Unmarshal(b, &stored); err != nil {
			return nil, nil, fmt.Errorf("auth: parse %s: %w", path, err)
		}
		if err := validateClients(stored); err != nil {
			return nil, nil, fmt.Errorf("auth: %s: %w", path, err)
		}
		return stored, nil, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("auth: read %s: %w", path, err)
	}
	key, err := randomToken(32)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256([]byte(key))
	gen := &GeneratedClient{
		ClientConfig: ClientConfig{ID: "default", APIKeySHA256: hex.EncodeToString(sum[:]), Admin: true},
		Key:          key,
	}
	out, err := yaml.Marshal([]ClientConfig{gen.ClientConfig})
	if err != nil {
		return nil, nil, fmt.Errorf("auth: encode clients: %w", err)
	}
	err = writeNew(path, out)
	if errors.Is(err, fs.ErrExist) {
		return ResolveClients(c)
	}
	if err != nil {
		return nil, nil, err
	}
	return []ClientConfig{gen.ClientConfig}, gen, nil
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// writeNew creates path with mode 0600 and the given content, atomically:
// readers see either no file or the whole content. It returns an error
// wrapping fs.ErrExist when path already exists.
func writeNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("auth: create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("auth: create %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("auth: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("auth: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("auth: close %s: %w", tmp, err)
	}
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("auth: create %s: %w", path, err)
	}
	return nil
}
