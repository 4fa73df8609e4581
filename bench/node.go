package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// nodeListenMsg is the log message with which a node announces its address.
const nodeListenMsg = "node listening"

// nodeSetup is a node that the bench runs on a temporary data folder, with
// a generated API key and JWT secret.
type nodeSetup struct {
	dir       string // temporary folder: binary, config and data
	binary    string
	apiKey    string
	jwtSecret string
}

// newNodeSetup creates the temporary folder, builds the relay into it
// unless binary names one, and generates the credentials.
func newNodeSetup(ctx context.Context, binary string) (*nodeSetup, error) {
	dir, err := os.MkdirTemp("", "esh3artech-bench-")
	if err != nil {
		return nil, fmt.Errorf("create a temporary folder: %w", err)
	}
	s := &nodeSetup{dir: dir, binary: binary}
	if err := s.init(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *nodeSetup) init(ctx context.Context) error {
	var err error
	if s.apiKey, err = randomSecret(); err != nil {
		return err
	}
	if s.jwtSecret, err = randomSecret(); err != nil {
		return err
	}
	if s.binary == "" {
		s.binary = filepath.Join(s.dir, "esh3artech")
		return buildRelay(ctx, s.binary)
	}
	return nil
}

// remove deletes the temporary folder with the node's data.
func (s *nodeSetup) remove() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove %s: %w", s.dir, err)
	}
	return nil
}

// randomSecret returns 32 random bytes in unpadded URL-safe base64.
func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate a secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// buildRelay builds the relay command of this module into out.
func buildRelay(ctx context.Context, out string) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("find the module root with go env GOMOD: %w", err)
	}
	path := strings.TrimSpace(string(gomod))
	if path == "" || path == os.DevNull {
		return fmt.Errorf("go env GOMOD found no go.mod; run the bench inside the module, or pass --node-bin")
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	build.Dir = filepath.Dir(path)
	if msg, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build of the relay in %s: %w\n%s", build.Dir, err, msg)
	}
	return nil
}

// clientRateHeadroom is how many times the offered rate the node's rate
// limit for the bench's client allows, so that the figures show the accept
// path rather than the limiter.
const clientRateHeadroom = 2

// config returns the YAML configuration of the node: a free loopback port,
// JSON logs, data in the temporary folder, and one business client whose
// API key is s.apiKey and whose rate limit is above rate.
func (s *nodeSetup) config(rate float64) string {
	sum := sha256.Sum256([]byte(s.apiKey))
	limit := math.Ceil(rate * clientRateHeadroom)
	return fmt.Sprintf(`log: {level: info, format: json}
http: {listen: "127.0.0.1:0"}
storage: {dir: %q}
auth:
  jwt: {hs256_secret: %q}
  clients:
    - {id: bench, api_key_sha256: %q, rate: %g, burst: %d}
`, filepath.Join(s.dir, "data"), s.jwtSecret, hex.EncodeToString(sum[:]), limit, int(limit))
}

// start writes the configuration for an offered load of rate messages per
// second and starts the node. The environment is
// passed on without ESH3ARTECH_ variables, which would override the
// generated configuration.
func (s *nodeSetup) start(rate float64) (*child, error) {
	path := filepath.Join(s.dir, "config.yaml")
	if err := os.WriteFile(path, []byte(s.config(rate)), 0o600); err != nil {
		return nil, fmt.Errorf("write the node configuration: %w", err)
	}
	cmd := exec.Command(s.binary, "serve", "--config", path)
	cmd.Dir = s.dir
	cmd.Env = []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ESH3ARTECH_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return startChild("node", cmd, nodeListenMsg)
}
