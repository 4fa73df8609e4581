package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSmokeAgainstRealNode runs the whole bench as a user would, with a
// small load: it builds the relay, starts it and the baseline server as
// separate processes, and loads both. It checks that the run works and that
// no message was lost, not how fast anything was.
func TestSmokeAgainstRealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay; skipped with -short")
	}
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.html")
	args := []string{
		"--clients", "300", "--sources", "2", "--rate", "500", "--duration", "2s",
		"--users", "50", "--offline", "0.2", "--drain", "2s", "--baseline",
		"--quiet", "--json", jsonPath, "--report", htmlPath,
	}
	var stdout, stderr bytes.Buffer

	code := run(context.Background(), args, &stdout, &stderr)

	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.NotEqual(t, exitSetup, code, "the bench failed to set up; see its stderr above")
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var rep struct {
		Accepted   *int64         `json:"accepted"`
		Refused    *int64         `json:"refused"`
		Errors     *int64         `json:"errors"`
		Delivered  *int64         `json:"delivered"`
		Duplicates *int64         `json:"duplicates"`
		Lost       *int64         `json:"lost"`
		AnswerMs   *percentiles   `json:"answer_ms"`
		E2EMs      *percentiles   `json:"e2e_ms"`
		Baseline   *answerFigures `json:"baseline"`
		Ratios     *ratios        `json:"ratios"`
		Process    *processUsage  `json:"process"`
	}
	require.NoError(t, json.Unmarshal(b, &rep))
	for name, field := range map[string]any{
		"accepted": rep.Accepted, "refused": rep.Refused, "errors": rep.Errors,
		"delivered": rep.Delivered, "duplicates": rep.Duplicates, "lost": rep.Lost,
		"answer_ms": rep.AnswerMs, "e2e_ms": rep.E2EMs, "baseline": rep.Baseline,
		"ratios": rep.Ratios, "process": rep.Process,
	} {
		require.NotNil(t, field, "report field %s", name)
	}
	require.Positive(t, *rep.Accepted)
	require.Zero(t, *rep.Errors)
	require.Positive(t, rep.Baseline.Accepted)
	require.FileExists(t, htmlPath)
	require.Zero(t, *rep.Lost, "every accepted message is delivered or dead-lettered")
	require.Equal(t, exitOK, code)
}
