package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailflow/mailflow/mailtest"
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
		{"escalate before remind", "[schedule]\nremind_after = \"48h\"\nescalate_after = \"1h\"\n", "schedule.escalate_after"},
		{"missing secret file", "[imap]\npassword_file = \"/nonexistent/pw\"\n", "imap.password_file"},
		{"zero retry base", "[smtp]\nretry_base = \"0s\"\n", "smtp.retry_base"},
		{"retry max below base", "[smtp]\nretry_base = \"10m\"\nretry_max = \"1m\"\n", "smtp.retry_max"},
		{"short lease", "[smtp]\nlease = \"10ms\"\n", "smtp.lease"},
		{"ca without a certificate", "[smtp]\nca = \"not a certificate\"\n", "smtp.ca"},
		{"plus in reply address", "[replies]\naddress = \"a+b@example.org\"\n", "replies.address"},
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
