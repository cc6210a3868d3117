package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailflow/internal/mailtest"
)

func TestExampleConfigLoads(t *testing.T) {
	t.Setenv("MAILFLOW_PORTAL_TOKEN", "portal-token-0123456789")
	t.Setenv("MAILFLOW_COORDINATOR_TOKEN", "coordinator-token-0123456789")
	t.Setenv("MAILFLOW_REPLY_SECRET", "reply-secret-0123456789")
	c, err := loadConfig("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Tokens[0].Token != "portal-token-0123456789" || c.Replies.Secret != "reply-secret-0123456789" {
		t.Errorf("env not expanded: %+v", c.HTTP.Tokens)
	}
	if c.pollInterval.String() != "2m0s" || c.location.String() != "Europe/Berlin" {
		t.Errorf("parsed values: %v %v", c.pollInterval, c.location)
	}
	if c.retryBase != time.Minute || c.retryMax != time.Hour || c.lease != 5*time.Minute {
		t.Errorf("smtp retry %v…%v, lease %v", c.retryBase, c.retryMax, c.lease)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("  file-secret-0123456789\n"), 0o600)
	tests := []struct {
		name, toml, want string
	}{
		{"unknown key", "[smtp]\nhots = \"x\"\n", "unknown key smtp.hots"},
		{"bad driver", "[database]\ndriver = \"mysql\"\n", "database.driver"},
		{"postgres without sslmode", "[database]\ndriver = \"postgres\"\ndsn = \"postgres://x@127.0.0.1/db\"\n", "database.dsn"},
		{"bad port", "[smtp]\nport = 0\n", "smtp.port"},
		{"bad tls", "[imap]\ntls = \"ssl\"\n", "imap.tls"},
		{"short token", "[[http.tokens]]\nrole = \"portal\"\ntoken = \"short\"\n", "http.tokens[0].token"},
		{"bad role", "[[http.tokens]]\nrole = \"admin\"\ntoken = \"0123456789abcdef0\"\n", "http.tokens[0].role"},
		{"missing env", "[replies]\nsecret = \"${MAILFLOW_NOT_SET_ANYWHERE}\"\n", "replies.secret: environment variable MAILFLOW_NOT_SET_ANYWHERE is not set"},
		{"bad duration", "[imap]\npoll_interval = \"often\"\n", "imap.poll_interval"},
		{"bad zone", "[schedule]\ntimezone = \"Mars/Olympus\"\n", "schedule.timezone"},
		{"retention in months", "[retention]\norders = \"6m\"\n", "retention.orders"},
		{"retention schedule", "[retention]\nschedule = \"daily\"\n", "retention.schedule"},
		{"escalate before remind", "[schedule]\nremind_after = \"48h\"\nescalate_after = \"1h\"\n", "schedule.escalate_after"},
		{"missing secret file", "[imap]\npassword_file = \"/nonexistent/pw\"\n", "imap.password_file"},
		{"zero retry base", "[smtp]\nretry_base = \"0s\"\n", "smtp.retry_base"},
		{"retry max below base", "[smtp]\nretry_base = \"10m\"\nretry_max = \"1m\"\n", "smtp.retry_max"},
		{"short lease", "[smtp]\nlease = \"10ms\"\n", "smtp.lease"},
		{"ca without a certificate", "[smtp]\nca = \"not a certificate\"\n", "smtp.ca"},
		{"plus in reply address", "[replies]\naddress = \"a+b@example.org\"\n", "replies.address"},
		{"bad proxy", "[http]\ntrusted_proxies = [\"127.0.0.1\", \"proxy.example.org\"]\n", "http.trusted_proxies[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.toml")
			os.WriteFile(p, []byte(tt.toml), 0o600)
			_, err := loadConfig(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	// <key>_file supplies the secret, trimmed, and the error never shows it.
	p := filepath.Join(dir, "ok.toml")
	os.WriteFile(p, []byte("[replies]\nsecret_file = \""+secret+"\"\n[imap]\npassword_file = \""+secret+"\"\n"), 0o600)
	c, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Replies.Secret != "file-secret-0123456789" || c.IMAP.Password != "file-secret-0123456789" {
		t.Errorf("secret from file = %q", c.Replies.Secret)
	}
}

// testHash is bcrypt (cost 4) of "tulpe-kanal-7".
const testHash = "$2a$04$2BJWsjNMwFflf.Rc/VZv5.BAlQWw4baLIRdCb2a9EefpWguy0sFzW"

// TestCoordinatorsConfig: [coordinator] and [[coordinators]] together
// give the page one login each, a hash or a password from a file.
func TestCoordinatorsConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "max")
	os.WriteFile(pw, []byte("rose-fluss-8x\n"), 0o600)
	p := writeConfig(t, dir, okSecret+"[coordinator]\npassword = \"tulpe-kanal-7\"\n"+
		"[[coordinators]]\nusername = \"erika\"\npassword_hash = \""+testHash+"\"\n"+
		"[[coordinators]]\nusername = \"max\"\npassword_file = \""+pw+"\"\n")
	c, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.checkServe(); err != nil {
		t.Fatal(err)
	}
	got := c.pageCoordinators()
	if len(got) != 3 || got[0].Username != "koordinierung" || got[1].PasswordHash != testHash || got[2].Password != "rose-fluss-8x" {
		t.Errorf("page coordinators: %+v", got)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-config", p, "check-config"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if want := "status page: coordinators koordinierung, erika, max; no sign-in links"; !strings.Contains(out.String(), want) || strings.Contains(out.String(), "rose") {
		t.Errorf("check-config says %q, want %q and no password", out.String(), want)
	}
}

// writeConfig writes a config with a database in dir and the given extra
// TOML, and returns its path.
func writeConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	p := filepath.Join(dir, "c.toml")
	text := "[database]\ndsn = \"" + filepath.Join(dir, "m.db") + "\"\n" + extra
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const okSecret = "[replies]\nsecret = \"reply-secret-0123456789\"\n"

func TestCoordinatorPasswordPolicy(t *testing.T) {
	tests := []struct {
		name, password, want string // want "": accepted
	}{
		{"eleven characters", "abcdefghij1", "coordinator.password: must be at least 12 characters, not 11"},
		{"eleven with umlauts", "äöüäöüäöüä1", "coordinator.password: must be at least 12 characters, not 11"},
		{"common", "Password1234", "coordinator.password: is a commonly used password"},
		{"the application's name", "koordinierung", "coordinator.password: is a commonly used password"},
		{"twelve, not common", "tulpe-kanal-7", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeConfig(t, dir, okSecret+"[coordinator]\npassword = \""+tt.password+"\"\n")
			var out, errb bytes.Buffer
			err := run(context.Background(), []string{"-config", p, "check-config"}, &out, &errb)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.password) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestDemoConfigPassesServeChecks: the demo generates its own password,
// which must pass the checks serve makes.
func TestDemoConfigPassesServeChecks(t *testing.T) {
	secret := func() string { return strings.ToLower(rand.Text()) }
	w, err := startDemoWorld("bestellungen@example.org", secret()[:16], secret()[:16])
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	for range 20 {
		cfg := demoConfig(filepath.Join(t.TempDir(), "demo.db"), w, secret)
		if err := cfg.validate(); err != nil {
			t.Fatal(err)
		}
		if err := cfg.checkServe(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckConfigRefusesWhatServeRefuses runs serve and check-config on
// the same refused configurations: both must fail with the same message.
func TestCheckConfigRefusesWhatServeRefuses(t *testing.T) {
	tests := []struct {
		name, toml, want string
	}{
		{"no reply secret", "", "replies.secret is required"},
		{"short password", okSecret + "[coordinator]\npassword = \"kurz\"\n", "coordinator.password"},
		{"common password", okSecret + "[coordinator]\npassword = \"password1234\"\n", "coordinator.password"},
		{"password without user", okSecret + "[coordinator]\nusername = \"\"\npassword = \"tulpe-kanal-7\"\n", "coordinator.username"},
		{"bad listen", okSecret + "[http]\nlisten = \"8080\"\n", "http.listen"},
		{"bad public url", okSecret + "[http]\npublic_url = \"bestellungen.example.org\"\n", "http.public_url"},
		{"duplicate token name", okSecret + "[[http.tokens]]\nname = \"p\"\nrole = \"portal\"\ntoken = \"0123456789abcdef0\"\n" +
			"[[http.tokens]]\nname = \"p\"\nrole = \"coordinator\"\ntoken = \"0123456789abcdef1\"\n", "http.tokens[1].name"},
		{"short token", okSecret + "[[http.tokens]]\nrole = \"portal\"\ntoken = \"short\"\n", "http.tokens[0].token"},
		{"coordinator without name", okSecret + "[[coordinators]]\npassword = \"tulpe-kanal-7\"\n", "coordinators[0].username"},
		{"coordinator named twice", okSecret + "[coordinator]\npassword = \"tulpe-kanal-7\"\n[[coordinators]]\nusername = \"koordinierung\"\npassword = \"rose-fluss-8x\"\n", "coordinators[0].username"},
		{"coordinator weak password", okSecret + "[[coordinators]]\nusername = \"erika\"\npassword = \"password1234\"\n", "coordinators[0].password"},
		{"coordinator both", okSecret + "[[coordinators]]\nusername = \"erika\"\npassword = \"tulpe-kanal-7\"\npassword_hash = \"" + testHash + "\"\n", "coordinators[0]: give password or password_hash"},
		{"coordinator neither", okSecret + "[[coordinators]]\nusername = \"erika\"\n", "coordinators[0]: password or password_hash is required"},
		{"coordinator bad hash", okSecret + "[[coordinators]]\nusername = \"erika\"\npassword_hash = \"5f4dcc3b5aa765d61d8327deb882cf99\"\n", "coordinators[0].password_hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, t.TempDir(), tt.toml)
			// A cancelled context: a serve that wrongly accepts the file
			// stops at once instead of serving.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var out, errb bytes.Buffer
			serveErr := run(ctx, []string{"-config", p, "serve"}, &out, &errb)
			checkErr := run(context.Background(), []string{"-config", p, "check-config"}, &out, &errb)
			if serveErr == nil || !strings.Contains(serveErr.Error(), tt.want) {
				t.Fatalf("serve: %v, want an error naming %q", serveErr, tt.want)
			}
			if checkErr == nil || checkErr.Error() != serveErr.Error() {
				t.Errorf("check-config: %v\nserve:        %v", checkErr, serveErr)
			}
		})
	}
}

func TestSecureCookiesConfig(t *testing.T) {
	tests := []struct {
		name, toml string
		want       bool
	}{
		{"default", "", false},
		{"http public url", "[http]\npublic_url = \"http://127.0.0.1:8080\"\n", false},
		{"https public url", "[http]\npublic_url = \"https://bestellungen.example.org\"\n", true},
		{"explicit", "[http]\nsecure_cookies = true\n", true},
		{"explicit off wins", "[http]\npublic_url = \"https://bestellungen.example.org\"\nsecure_cookies = false\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(writeConfig(t, t.TempDir(), tt.toml))
			if err != nil {
				t.Fatal(err)
			}
			if c.secureCookies != tt.want {
				t.Errorf("secureCookies = %v, want %v", c.secureCookies, tt.want)
			}
		})
	}
}

// TestDaemonSessionCookieSecure logs in to the status page of a daemon
// built from the configuration: the cookie is Secure exactly when
// http.public_url is https or http.secure_cookies says so.
func TestDaemonSessionCookieSecure(t *testing.T) {
	tests := []struct {
		name, http string
		want       bool
	}{
		{"plain", "", false},
		{"https public url", "public_url = \"https://bestellungen.example.org/\"\n", true},
		{"explicit", "secure_cookies = true\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(writeConfig(t, t.TempDir(), okSecret+
				"[coordinator]\nusername = \"koordinierung\"\npassword = \"tulpe-kanal-7\"\n[http]\n"+tt.http))
			if err != nil {
				t.Fatal(err)
			}
			d, err := newDaemon(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer d.store.Close()
			srv := httptest.NewServer(d.http.Handler)
			defer srv.Close()
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.PostForm(srv.URL+"/anmelden", url.Values{"username": {"koordinierung"}, "password": {"tulpe-kanal-7"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			cookies := resp.Cookies()
			if resp.StatusCode != http.StatusSeeOther || len(cookies) != 1 {
				t.Fatalf("login: %s, cookies %v", resp.Status, resp.Header["Set-Cookie"])
			}
			if cookies[0].Secure != tt.want {
				t.Errorf("Secure = %v, want %v", cookies[0].Secure, tt.want)
			}
		})
	}
}

// TestConfigSMTPCA: ca_file names the PEM certificates that verify the
// relay; the sender trusts them, and only them.
func TestConfigSMTPCA(t *testing.T) {
	serverTLS, _, err := mailtest.TLSCert()
	if err != nil {
		t.Fatal(err)
	}
	cert := serverTLS.Certificates[0].Leaf
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600)
	p := filepath.Join(dir, "c.toml")
	os.WriteFile(p, []byte("[smtp]\nca_file = \""+ca+"\"\n"), 0o600)
	c, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: c.smtpRoots, DNSName: "localhost"}); err != nil {
		t.Errorf("the relay's certificate does not verify against smtp.ca: %v", err)
	}
	if c, err := loadConfig(""); err != nil || c.smtpRoots != nil {
		t.Errorf("without smtp.ca: roots %v, err %v; want the system's (nil)", c.smtpRoots, err)
	}
}
