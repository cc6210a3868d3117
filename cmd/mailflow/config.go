package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"mailflow/mailflow"
	"mailflow/templates"
)

// Config is mailflow's TOML configuration; shared/INTERFACES.md fixes the
// key names.
type Config struct {
	Database struct {
		Driver string `toml:"driver"`
		DSN    string `toml:"dsn"`
	} `toml:"database"`
	HTTP struct {
		Listen string `toml:"listen"`
		Tokens []struct {
			Name  string `toml:"name"`
			Role  string `toml:"role"`
			Token string `toml:"token"`
		} `toml:"tokens"`
	} `toml:"http"`
	SMTP struct {
		Host        string  `toml:"host"`
		Port        int     `toml:"port"`
		TLS         string  `toml:"tls"`
		Username    string  `toml:"username"`
		Password    string  `toml:"password"`
		CA          string  `toml:"ca"`
		From        string  `toml:"from"`
		Concurrency int     `toml:"concurrency"`
		Rate        float64 `toml:"rate"`
		RetryBase   string  `toml:"retry_base"`
		RetryMax    string  `toml:"retry_max"`
		Lease       string  `toml:"lease"`
	} `toml:"smtp"`
	IMAP struct {
		Host             string `toml:"host"`
		Port             int    `toml:"port"`
		TLS              string `toml:"tls"`
		Auth             string `toml:"auth"`
		Username         string `toml:"username"`
		Password         string `toml:"password"`
		Mailbox          string `toml:"mailbox"`
		ProcessedMailbox string `toml:"processed_mailbox"`
		ReviewMailbox    string `toml:"review_mailbox"`
		Idle             bool   `toml:"idle"`
		PollInterval     string `toml:"poll_interval"`
		MaxMessageSize   int64  `toml:"max_message_size"`
	} `toml:"imap"`
	Replies struct {
		Address                    string   `toml:"address"`
		Secret                     string   `toml:"secret"`
		OldSecrets                 []string `toml:"old_secrets"`
		RequireAuthenticatedSender bool     `toml:"require_authenticated_sender"`
		TrustedAuthservID          string   `toml:"trusted_authserv_id"`
	} `toml:"replies"`
	Coordinator struct {
		Email    string `toml:"email"`
		Username string `toml:"username"`
		Password string `toml:"password"`
	} `toml:"coordinator"`
	Schedule struct {
		Timezone      string `toml:"timezone"`
		Billing       string `toml:"billing"`
		Reminders     string `toml:"reminders"`
		Digest        string `toml:"digest"`
		RemindAfter   string `toml:"remind_after"`
		EscalateAfter string `toml:"escalate_after"`
	} `toml:"schedule"`
	Log struct {
		Level  string `toml:"level"`
		Format string `toml:"format"`
	} `toml:"log"`

	// Parsed values.
	smtpRoots     *x509.CertPool // nil: the system's
	retryBase     time.Duration
	retryMax      time.Duration
	lease         time.Duration
	pollInterval  time.Duration
	remindAfter   time.Duration
	escalateAfter time.Duration
	location      *time.Location
}

// defaultConfig is what an empty file means: SQLite next to the binary,
// the loopback API, the default schedule.
func defaultConfig() *Config {
	c := &Config{}
	c.Database.Driver = "sqlite"
	c.Database.DSN = "mailflow.db"
	c.HTTP.Listen = "127.0.0.1:8080"
	c.SMTP.Host, c.SMTP.Port, c.SMTP.TLS = "127.0.0.1", 587, "starttls"
	c.SMTP.From = "DVC Bestellservice <bestellungen@example.org>"
	c.SMTP.Concurrency = 4
	c.SMTP.RetryBase, c.SMTP.RetryMax, c.SMTP.Lease = "1m", "1h", "5m"
	c.IMAP.Port, c.IMAP.TLS, c.IMAP.Auth = 993, "tls", "password"
	c.IMAP.Mailbox, c.IMAP.ProcessedMailbox, c.IMAP.ReviewMailbox = "INBOX", "Processed", "Review"
	c.IMAP.Idle = true
	c.IMAP.PollInterval = "2m"
	c.IMAP.MaxMessageSize = 25 << 20
	c.Replies.Address = "bestellungen@example.org"
	c.Coordinator.Email = "koordinierung@example.org"
	c.Coordinator.Username = "koordinierung"
	c.Schedule.Timezone = "Europe/Berlin"
	c.Schedule.Billing = "0 6 1 * *"
	c.Schedule.Reminders = "0 8 * * 1-5"
	c.Schedule.Digest = "0 7 * * 1-5"
	c.Schedule.RemindAfter = "48h"
	c.Schedule.EscalateAfter = "120h"
	c.Log.Level, c.Log.Format = "info", "text"
	return c
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// loadConfig reads a TOML file: ${ENV} references in string values are
// replaced, a key "<key>_file" supplies <key> from the trimmed content of
// a file, unknown keys are errors. An empty path means defaults only.
func loadConfig(path string) (*Config, error) {
	c := defaultConfig()
	if path == "" {
		return c, c.validate()
	}
	raw := map[string]any{}
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := resolve(raw, ""); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(raw); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	md, err := toml.Decode(buf.String(), c)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("config %s: unknown key %s", path, und[0])
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// resolve expands ${ENV} and <key>_file in place.
func resolve(m map[string]any, prefix string) error {
	for k, v := range m {
		key := prefix + k
		switch v := v.(type) {
		case string:
			var missing string
			s := envRef.ReplaceAllStringFunc(v, func(ref string) string {
				name := envRef.FindStringSubmatch(ref)[1]
				val, ok := os.LookupEnv(name)
				if !ok && missing == "" {
					missing = name
				}
				return val
			})
			if missing != "" {
				return fmt.Errorf("%s: environment variable %s is not set", key, missing)
			}
			if base, ok := strings.CutSuffix(k, "_file"); ok {
				if _, both := m[base]; both {
					return fmt.Errorf("%s: give either %s or %s, not both", key, prefix+base, key)
				}
				b, err := os.ReadFile(s)
				if err != nil {
					// The path is not secret, the content is: name only the path.
					return fmt.Errorf("%s: cannot read %s: %v", key, s, pathErr(err))
				}
				delete(m, k)
				m[base] = strings.TrimSpace(string(b))
				continue
			}
			m[k] = s
		case map[string]any:
			if err := resolve(v, key+"."); err != nil {
				return err
			}
		case []map[string]any:
			for i, e := range v {
				if err := resolve(e, fmt.Sprintf("%s[%d].", key, i)); err != nil {
					return err
				}
			}
		case []any:
			for i, e := range v {
				if s, ok := e.(string); ok {
					v[i] = envRef.ReplaceAllStringFunc(s, func(ref string) string { return os.Getenv(envRef.FindStringSubmatch(ref)[1]) })
				}
			}
		}
	}
	return nil
}

func pathErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// validate checks every value and names the offending key.
func (c *Config) validate() error {
	var err error
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
	}
	if !slices.Contains([]string{"sqlite", "postgres"}, c.Database.Driver) {
		return bad("database.driver", "must be \"sqlite\" or \"postgres\", not %q", c.Database.Driver)
	}
	if c.Database.DSN == "" {
		return bad("database.dsn", "is required")
	}
	if c.Database.Driver == "postgres" && !strings.Contains(c.Database.DSN, "sslmode") {
		return bad("database.dsn", "must set sslmode (e.g. ?sslmode=disable or sslmode=verify-full)")
	}
	for i, t := range c.HTTP.Tokens {
		key := fmt.Sprintf("http.tokens[%d]", i)
		if t.Role != "portal" && t.Role != "coordinator" {
			return bad(key+".role", "must be \"portal\" or \"coordinator\"")
		}
		if len(t.Token) < 16 {
			return bad(key+".token", "must be at least 16 characters")
		}
		if t.Name == "" {
			c.HTTP.Tokens[i].Name = fmt.Sprintf("%s-%d", t.Role, i+1)
		}
	}
	if c.SMTP.Port < 1 || c.SMTP.Port > 65535 {
		return bad("smtp.port", "must be 1–65535")
	}
	if !slices.Contains([]string{"starttls", "tls", "none"}, c.SMTP.TLS) {
		return bad("smtp.tls", "must be \"starttls\", \"tls\" or \"none\"")
	}
	if c.SMTP.CA != "" {
		c.smtpRoots = x509.NewCertPool()
		if !c.smtpRoots.AppendCertsFromPEM([]byte(c.SMTP.CA)) {
			return bad("smtp.ca", "holds no PEM certificate")
		}
	}
	if _, e := mail.ParseAddress(c.SMTP.From); e != nil {
		return bad("smtp.from", "is not an address such as \"DVC Bestellservice <bestellungen@example.org>\"")
	}
	if c.SMTP.Concurrency < 1 || c.SMTP.Concurrency > 64 {
		return bad("smtp.concurrency", "must be 1–64")
	}
	if c.SMTP.Rate < 0 {
		return bad("smtp.rate", "must not be negative")
	}
	if c.retryBase, err = time.ParseDuration(c.SMTP.RetryBase); err != nil || c.retryBase <= 0 {
		return bad("smtp.retry_base", "must be a positive duration such as \"1m\"")
	}
	if c.retryMax, err = time.ParseDuration(c.SMTP.RetryMax); err != nil || c.retryMax < c.retryBase {
		return bad("smtp.retry_max", "must be a duration not shorter than retry_base, such as \"1h\"")
	}
	if c.lease, err = time.ParseDuration(c.SMTP.Lease); err != nil || c.lease < time.Second {
		return bad("smtp.lease", "must be a duration of at least 1s such as \"5m\"")
	}
	if c.IMAP.Port < 1 || c.IMAP.Port > 65535 {
		return bad("imap.port", "must be 1–65535")
	}
	if !slices.Contains([]string{"starttls", "tls", "none"}, c.IMAP.TLS) {
		return bad("imap.tls", "must be \"tls\", \"starttls\" or \"none\"")
	}
	if c.IMAP.Auth != "password" && c.IMAP.Auth != "xoauth2" {
		return bad("imap.auth", "must be \"password\" or \"xoauth2\"")
	}
	if c.pollInterval, err = time.ParseDuration(c.IMAP.PollInterval); err != nil || c.pollInterval < time.Second {
		return bad("imap.poll_interval", "must be a duration of at least 1s such as \"2m\"")
	}
	if c.IMAP.MaxMessageSize < 1024 {
		return bad("imap.max_message_size", "must be at least 1024 bytes")
	}
	if a, e := mail.ParseAddress(c.Replies.Address); e != nil || a.Name != "" || strings.Contains(a.Address, "+") {
		return bad("replies.address", "must be a plain address without +, such as bestellungen@example.org")
	}
	if c.Replies.Secret != "" && len(c.Replies.Secret) < 16 {
		return bad("replies.secret", "must be at least 16 characters")
	}
	if _, e := mail.ParseAddress(c.Coordinator.Email); e != nil {
		return bad("coordinator.email", "is not a valid address")
	}
	if c.location, err = time.LoadLocation(c.Schedule.Timezone); err != nil {
		return bad("schedule.timezone", "unknown time zone %q", c.Schedule.Timezone)
	}
	if c.remindAfter, err = time.ParseDuration(c.Schedule.RemindAfter); err != nil || c.remindAfter <= 0 {
		return bad("schedule.remind_after", "must be a positive duration such as \"48h\"")
	}
	if c.escalateAfter, err = time.ParseDuration(c.Schedule.EscalateAfter); err != nil || c.escalateAfter < c.remindAfter {
		return bad("schedule.escalate_after", "must be a duration not shorter than remind_after")
	}
	for _, s := range []struct{ key, spec string }{{"schedule.billing", c.Schedule.Billing}, {"schedule.reminders", c.Schedule.Reminders}, {"schedule.digest", c.Schedule.Digest}} {
		if len(strings.Fields(s.spec)) != 5 && !strings.HasPrefix(s.spec, "@") && s.spec != "" {
			return bad(s.key, "must be a five-field cron spec such as \"0 6 1 * *\"")
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return bad("log.level", "must be debug, info, warn or error")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return bad("log.format", "must be \"text\" or \"json\"")
	}
	return nil
}

// composer builds the reply tokens and the mail composer every verb that
// enqueues mail shares with the daemon.
func (c *Config) composer() (*mailflow.Tokens, *mailflow.Composer, error) {
	secrets := c.secrets()
	if len(secrets) == 0 {
		return nil, nil, errors.New("replies.secret is required: it signs the reply tokens of every notification")
	}
	tokens, err := mailflow.NewTokens(secrets)
	if err != nil {
		return nil, nil, fmt.Errorf("replies.secret: %w", err)
	}
	tmpl, err := templates.New()
	if err != nil {
		return nil, nil, err
	}
	composer, err := mailflow.NewComposer(mailflow.ComposerConfig{
		From: c.SMTP.From, ReplyAddress: c.Replies.Address, Coordinator: c.Coordinator.Email,
		Tokens: tokens, Templates: tmpl,
	})
	return tokens, composer, err
}

// secrets returns the reply secrets, newest first.
func (c *Config) secrets() []string {
	var out []string
	if c.Replies.Secret != "" {
		out = append(out, c.Replies.Secret)
	}
	return append(out, c.Replies.OldSecrets...)
}
