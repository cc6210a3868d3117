package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeTryingTheAPI returns the configuration and the exported
// variables of the README's "Trying the API" section.
func readmeTryingTheAPI(t *testing.T) (toml string, env map[string]string) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "## Trying the API")
	if !ok {
		t.Fatal(`README has no "Trying the API" section`)
	}
	m := regexp.MustCompile(`(?s)cat > mailflow.toml <<'TOML'\n(.*?)\nTOML\n`).FindStringSubmatch(sec)
	if m == nil {
		t.Fatal("Trying the API: no mailflow.toml heredoc")
	}
	env = map[string]string{}
	for _, e := range regexp.MustCompile(`(?m)^export (\w+)=(.+)$`).FindAllStringSubmatch(sec, -1) {
		env[e[1]] = e[2]
	}
	return m[1], env
}

// TestReadmeStatusPage: the README's configuration, as a reader copies
// it, serves a status page one can sign in to; without a password the
// root says how to turn the page on instead of a bare 404.
func TestReadmeStatusPage(t *testing.T) {
	toml, env := readmeTryingTheAPI(t)
	for k, v := range env {
		if strings.HasPrefix(v, "$(") {
			v = "readme-test-secret-0123456789abcdef" // the README draws it from /dev/urandom
		}
		t.Setenv(k, v)
	}
	if env["MAILFLOW_COORDINATOR_PASSWORD"] == "" {
		t.Fatal("the README exports no MAILFLOW_COORDINATOR_PASSWORD")
	}
	run := func(toml string) (*e2e, *http.Client) {
		t.Helper()
		dir := t.TempDir()
		path := filepath.Join(dir, "mailflow.toml")
		if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path)
		if err != nil {
			t.Fatalf("the README's configuration: %v", err)
		}
		cfg.Database.DSN = filepath.Join(dir, "mailflow.db")
		cfg.HTTP.Listen = "127.0.0.1:0"
		e := runDaemon(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		jar, _ := cookiejar.New(nil)
		return e, &http.Client{Jar: jar}
	}
	get := func(c *http.Client, u string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	e, c := run(toml)
	resp, body := get(c, e.base+"/")
	if resp.StatusCode != 200 || !strings.HasSuffix(resp.Request.URL.Path, "/anmelden") || !strings.Contains(body, `name="password"`) {
		t.Fatalf("/ of the README's daemon: %d at %s, want the login form", resp.StatusCode, resp.Request.URL)
	}
	resp, err := c.PostForm(e.base+"/anmelden", url.Values{"username": {"koordinierung"}, "password": {env["MAILFLOW_COORDINATOR_PASSWORD"]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/bestellungen" {
		t.Fatalf("sign-in with the README's password: %d at %s", resp.StatusCode, resp.Request.URL)
	}

	// Without a password: no page, but a helpful root.
	e, c = run(regexp.MustCompile(`(?m)^password = .*$`).ReplaceAllString(toml, ""))
	resp, body = get(c, e.base+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, "coordinator.password") || !strings.Contains(body, "/api/v1/") {
		t.Errorf("/ without a status page: %d %q", resp.StatusCode, body)
	}
	if resp, body := get(c, e.base+"/bestellungen"); resp.StatusCode != 404 || !strings.Contains(body, "coordinator.password") {
		t.Errorf("/bestellungen without a status page: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(c, e.base+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
}
