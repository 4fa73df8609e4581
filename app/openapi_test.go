package app

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func parseOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(openAPIDoc, &doc))
	return doc
}

// operations returns the document's operations by "METHOD /path".
func operations(t *testing.T, doc map[string]any) map[string]map[string]any {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	require.True(t, ok, "paths is an object")
	ops := map[string]map[string]any{}
	for path, item := range paths {
		itemMap, ok := item.(map[string]any)
		require.True(t, ok, "path item %s is an object", path)
		for _, m := range openAPIMethods {
			if op, ok := itemMap[m].(map[string]any); ok {
				ops[strings.ToUpper(m)+" "+path] = op
			}
		}
	}
	return ops
}

// resolve follows a local JSON pointer such as #/components/schemas/Message.
func resolve(t *testing.T, doc map[string]any, ref string) any {
	t.Helper()
	require.True(t, strings.HasPrefix(ref, "#/"), "only local references are used: %s", ref)
	var node any = doc
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := node.(map[string]any)
		require.True(t, ok, "%s: %s is not inside an object", ref, part)
		node, ok = m[part]
		require.True(t, ok, "%s does not resolve", ref)
	}
	return node
}

// deref returns v, or the value its $ref points to.
func deref(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "%v is not an object", v)
	if ref, ok := m["$ref"].(string); ok {
		m, ok = resolve(t, doc, ref).(map[string]any)
		require.True(t, ok, "%s is not an object", ref)
	}
	return m
}

func TestOpenAPIVersion(t *testing.T) {
	doc := parseOpenAPI(t)
	require.Regexp(t, `^3\.1\.\d+$`, doc["openapi"])
	info, ok := doc["info"].(map[string]any)
	require.True(t, ok)
	require.NotEmpty(t, info["title"])
	require.NotEmpty(t, info["version"])
}

// TestOpenAPIMatchesRoutes checks that the document describes exactly the
// routes registered on the node's echo instance. Routes of the SignalR hub
// and /metrics are skipped unless the document lists their path.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	node := newTestNode(t)
	doc := parseOpenAPI(t)
	documented := operations(t, doc)
	paths := doc["paths"].(map[string]any)

	param := regexp.MustCompile(`:([A-Za-z0-9_]+)`)
	var registered []string
	for _, r := range node.echo.Routes() {
		if !slices.Contains(openAPIMethods, strings.ToLower(r.Method)) {
			// Catch-all routes for 404s and non-standard methods that
			// e.Any registers, such as PROPFIND.
			continue
		}
		path := param.ReplaceAllString(r.Path, "{$1}")
		_, pathDocumented := paths[path]
		undocumentedPrefix := strings.HasPrefix(path, node.cfg.Hub.Path) || strings.HasPrefix(path, "/metrics")
		if undocumentedPrefix && !pathDocumented {
			continue
		}
		registered = append(registered, r.Method+" "+path)
	}
	var listed []string
	for key := range documented {
		listed = append(listed, key)
	}
	slices.Sort(registered)
	slices.Sort(listed)
	require.Equal(t, registered, listed, "routes registered on echo and operations in app/openapi.json differ")
}

func TestOpenAPIReferencesResolve(t *testing.T) {
	doc := parseOpenAPI(t)
	var walk func(v any)
	count := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				resolve(t, doc, ref)
				count++
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(doc)
	require.Positive(t, count)
}

func TestOpenAPIOperations(t *testing.T) {
	doc := parseOpenAPI(t)
	ops := operations(t, doc)
	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	ids := map[string]string{}

	for key, op := range ops {
		t.Run(key, func(t *testing.T) {
			method, path, _ := strings.Cut(key, " ")
			id, _ := op["operationId"].(string)
			require.NotEmpty(t, id)
			require.NotContains(t, ids, id, "operationId is unique")
			ids[id] = key

			responses, ok := op["responses"].(map[string]any)
			require.True(t, ok)
			require.NotEmpty(t, responses)
			for status, resp := range responses {
				_, err := strconv.Atoi(status)
				require.NoError(t, err, "status %q", status)
				require.NotEmpty(t, deref(t, doc, resp)["description"], "status %s", status)
			}

			// Every {name} in the path has a path parameter.
			var params []string
			if list, ok := op["parameters"].([]any); ok {
				for _, p := range list {
					pm := deref(t, doc, p)
					if pm["in"] == "path" {
						params = append(params, pm["name"].(string))
					}
				}
			}
			var want []string
			for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
				want = append(want, m[1])
			}
			require.ElementsMatch(t, want, params)

			if !strings.HasPrefix(path, "/api/") {
				security, ok := op["security"].([]any)
				require.True(t, ok, "routes outside /api need no credentials")
				require.Empty(t, security)
				return
			}
			require.Contains(t, responses, "401")
			require.Contains(t, responses, "503")
			errorSchema := "#/components/schemas/Problem"
			if isCompatPath(path) {
				errorSchema = "#/components/schemas/AbpError"
			}
			for status, resp := range responses {
				code, _ := strconv.Atoi(status)
				if code < 400 {
					continue
				}
				content := deref(t, doc, resp)["content"].(map[string]any)
				require.Len(t, content, 1, "status %s", status)
				for _, media := range content {
					schema := media.(map[string]any)["schema"].(map[string]any)
					require.Equal(t, errorSchema, schema["$ref"], "status %s", status)
				}
			}
			if method == http.MethodPost && strings.Contains(path, "message") {
				for _, status := range []string{"400", "413", "415", "422", "429"} {
					require.Contains(t, responses, status)
				}
				headers := deref(t, doc, responses["429"])["headers"].(map[string]any)
				require.Contains(t, headers, "Retry-After")
				var hasIdempotencyKey bool
				for _, p := range op["parameters"].([]any) {
					if deref(t, doc, p)["name"] == "Idempotency-Key" {
						hasIdempotencyKey = true
					}
				}
				require.True(t, hasIdempotencyKey, "send routes take an Idempotency-Key")
			}
		})
	}
}

func TestOpenAPISecuritySchemes(t *testing.T) {
	doc := parseOpenAPI(t)
	schemes := resolve(t, doc, "#/components/securitySchemes").(map[string]any)
	apiKey := schemes["ApiKey"].(map[string]any)
	require.Equal(t, "apiKey", apiKey["type"])
	require.Equal(t, "header", apiKey["in"])
	require.Equal(t, "X-Api-Key", apiKey["name"])
	bearer := schemes["BearerJWT"].(map[string]any)
	require.Equal(t, "http", bearer["type"])
	require.Equal(t, "bearer", bearer["scheme"])
	require.Equal(t, "JWT", bearer["bearerFormat"])
	require.Len(t, doc["security"], 2)
}

// TestOpenAPIMessageFields checks that the Message schema lists exactly the
// fields that the API returns.
func TestOpenAPIMessageFields(t *testing.T) {
	doc := parseOpenAPI(t)
	schema := resolve(t, doc, "#/components/schemas/Message").(map[string]any)
	var documented []string
	for name := range schema["properties"].(map[string]any) {
		documented = append(documented, name)
	}

	view, err := json.Marshal(messageView{})
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(view, &fields))
	var returned []string
	for name := range fields {
		returned = append(returned, name)
	}
	require.ElementsMatch(t, returned, documented)
}
