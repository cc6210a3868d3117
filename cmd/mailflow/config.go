package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"mailflow/mailflow/compose"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/crypto/bcrypt"

	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/templates"
	"mailflow/web"
)

// Config is mailflow's TOML configuration. Its key names are a contract
// with operators: config.example.toml documents each one, and a key is
// never renamed or removed without a note in the README.
type Config struct {
	Database struct {
		Driver string `toml:"driver"`
		DSN    string `toml:"dsn"`
	} `toml:"database"`
	HTTP struct {
		Listen string `toml:"listen"`
		// PublicURL is the URL under which people reach the status page.
		PublicURL string `toml:"public_url"`
		// SecureCookies forces the session cookie's Secure attribute
		// (true or false); unset, it follows PublicURL's scheme.
		SecureCookies *bool `toml:"secure_cookies"`
		// TrustedProxies are reverse proxies (addresses or CIDR ranges)
		// whose X-Forwarded-For names the client for the status page's
		// rate limits.
		TrustedProxies []string `toml:"trusted_proxies"`
		Tokens         []struct {
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
	// Coordinators are more status page logins besides [coordinator]'s,
	// one per person, so that a decision by hand names who recorded it.
	Coordinators []struct {
		Username     string `toml:"username"`
		Password     string `toml:"password"`
		PasswordHash string `toml:"password_hash"`
	} `toml:"coordinators"`
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
	Evidence struct {
		// KeyPath is the Ed25519 key that signs evidence bundles,
		// generated there at first start; default beside the SQLite
		// database, required for PostgreSQL.
		KeyPath string `toml:"key_path"`
	} `toml:"evidence"`
	Retention struct {
		Orders   string `toml:"orders"`
		RawMail  string `toml:"raw_mail"`
		Evidence string `toml:"evidence"`
		Schedule string `toml:"schedule"`
	} `toml:"retention"`

	// Parsed values.
	smtpRoots     *x509.CertPool // nil: the system's
	retryBase     time.Duration
	retryMax      time.Duration
	lease         time.Duration
	pollInterval  time.Duration
	remindAfter   time.Duration
	escalateAfter time.Duration
	location      *time.Location
	secureCookies bool
	proxies       []netip.Prefix
	retention     scheduler.Retention
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
	// 04:15 local: outside the 02:00–03:00 hour that DST skips or repeats.
	c.Retention.Schedule = "15 4 * * *"
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

// validate checks every key and fills in the parsed values; the error
// names the key ("smtp.port: must be 1–65535").
func (c *Config) validate() error {
	for _, check := range []func() error{c.validateDatabase, c.validateHTTP, c.validateSMTP,
		c.validateIMAP, c.validateAddresses, c.validateSchedule, c.validateLog, c.validateRetention} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// bad is a refused key with what is wrong with it.
func bad(key, format string, args ...any) error {
	return fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
}

// validateDatabase checks [database].
func (c *Config) validateDatabase() error {
	if !slices.Contains([]string{"sqlite", "postgres"}, c.Database.Driver) {
		return bad("database.driver", "must be \"sqlite\" or \"postgres\", not %q", c.Database.Driver)
	}
	if c.Database.DSN == "" {
		return bad("database.dsn", "is required")
	}
	if c.Database.Driver == "postgres" && !strings.Contains(c.Database.DSN, "sslmode") {
		return bad("database.dsn", "must set sslmode (e.g. ?sslmode=disable or sslmode=verify-full)")
	}
	return nil
}

// validateHTTP checks [http] and its tokens.
func (c *Config) validateHTTP() error {
	if _, _, e := net.SplitHostPort(c.HTTP.Listen); e != nil {
		return bad("http.listen", "must be host:port such as \"127.0.0.1:8080\"")
	}
	if c.HTTP.PublicURL != "" {
		u, e := url.Parse(c.HTTP.PublicURL)
		if e != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("http.public_url", "must be an http or https URL such as \"https://bestellungen.example.org\"")
		}
		c.secureCookies = u.Scheme == "https"
	}
	if c.HTTP.SecureCookies != nil {
		c.secureCookies = *c.HTTP.SecureCookies
	}
	c.proxies = nil
	for i, s := range c.HTTP.TrustedProxies {
		pr, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return bad(fmt.Sprintf("http.trusted_proxies[%d]", i), "must be an IP address or CIDR range such as \"127.0.0.1\" or \"10.0.0.0/8\"")
			}
			pr = netip.PrefixFrom(a, a.BitLen())
		}
		c.proxies = append(c.proxies, pr.Masked())
	}
	names := map[string]bool{}
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
		// A token's name is recorded as the creator of its orders and
		// decides which orders a portal token may read: one name, one token.
		if names[c.HTTP.Tokens[i].Name] {
			return bad(key+".name", "%q is the name of an earlier token; names must be unique", c.HTTP.Tokens[i].Name)
		}
		names[c.HTTP.Tokens[i].Name] = true
	}
	return nil
}

// validateSMTP checks [smtp] and parses its durations.
func (c *Config) validateSMTP() error {
	var err error
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
	return nil
}

// validateIMAP checks [imap].
func (c *Config) validateIMAP() error {
	var err error
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
	return nil
}

// validateAddresses checks [replies] and [coordinator].
func (c *Config) validateAddresses() error {
	if a, e := mail.ParseAddress(c.Replies.Address); e != nil || a.Name != "" || strings.Contains(a.Address, "+") {
		return bad("replies.address", "must be a plain address without +, such as bestellungen@example.org")
	}
	if c.Replies.Secret != "" && len(c.Replies.Secret) < 16 {
		return bad("replies.secret", "must be at least 16 characters")
	}
	if _, e := mail.ParseAddress(c.Coordinator.Email); e != nil {
		return bad("coordinator.email", "is not a valid address")
	}
	return nil
}

// validateSchedule checks [schedule] and parses its time zone and durations.
func (c *Config) validateSchedule() error {
	var err error
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
	return nil
}

// validateLog checks [log].
func (c *Config) validateLog() error {
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return bad("log.level", "must be debug, info, warn or error")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return bad("log.format", "must be \"text\" or \"json\"")
	}
	return nil
}

// validateRetention checks [retention] and parses its periods.
func (c *Config) validateRetention() error {
	for _, p := range []struct {
		key, value string
		into       *scheduler.Period
	}{{"retention.orders", c.Retention.Orders, &c.retention.Orders}, {"retention.raw_mail", c.Retention.RawMail, &c.retention.RawMail},
		{"retention.evidence", c.Retention.Evidence, &c.retention.Evidence}} {
		var err error
		if *p.into, err = scheduler.ParsePeriod(p.value); err != nil {
			return bad(p.key, "must be a period such as \"10y\" (whole years after the end of the calendar year) or \"90d\", or \"\" to keep everything")
		}
	}
	if s := c.Retention.Schedule; len(strings.Fields(s)) != 5 && !strings.HasPrefix(s, "@") && s != "" {
		return bad("retention.schedule", "must be a five-field cron spec such as \"15 4 * * *\"")
	}
	c.retention.Spec = c.Retention.Schedule
	return nil
}

// evidenceKeyPath is where the evidence signing key lives: evidence.key_path,
// or for SQLite a file beside the database ("mailflow.db" →
// "mailflow-evidence.key"); "" for PostgreSQL without key_path, whose
// daemons may run on several hosts and must share one configured key.
func (c *Config) evidenceKeyPath() string {
	if c.Evidence.KeyPath != "" || c.Database.Driver != "sqlite" {
		return c.Evidence.KeyPath
	}
	db, _, _ := strings.Cut(strings.TrimPrefix(c.Database.DSN, "file:"), "?")
	return strings.TrimSuffix(db, filepath.Ext(db)) + "-evidence.key"
}

// checkServe refuses what serve (and the demo) cannot run with, beyond
// validate's per-key checks: the reply secret and the mail templates, and
// the status page's credentials. serve and check-config both call it, so
// check-config refuses exactly what serve refuses, with the same message.
func (c *Config) checkServe() error {
	if _, _, err := c.composer(); err != nil {
		return err
	}
	if c.Coordinator.Password != "" {
		if c.Coordinator.Username == "" {
			return errors.New("coordinator.username: is required when coordinator.password is set")
		}
		if err := weakPassword(c.Coordinator.Password); err != "" {
			return fmt.Errorf("coordinator.password: %s", err)
		}
	}
	names := map[string]bool{}
	if c.Coordinator.Password != "" {
		names[c.Coordinator.Username] = true
	}
	for i, co := range c.Coordinators {
		key := fmt.Sprintf("coordinators[%d]", i)
		switch {
		case co.Username == "":
			return fmt.Errorf("%s.username: is required", key)
		case names[co.Username]:
			return fmt.Errorf("%s.username: %q is the user name of another coordinator; names must be unique", key, co.Username)
		case co.Password != "" && co.PasswordHash != "":
			return fmt.Errorf("%s: give password or password_hash, not both", key)
		case co.Password == "" && co.PasswordHash == "":
			return fmt.Errorf("%s: password or password_hash is required", key)
		case co.Password != "":
			if err := weakPassword(co.Password); err != "" {
				return fmt.Errorf("%s.password: %s", key, err)
			}
		default:
			if _, err := bcrypt.Cost([]byte(co.PasswordHash)); err != nil {
				return fmt.Errorf("%s.password_hash: is not a bcrypt hash (\"$2b$12$…\", e.g. from htpasswd -nbBC 12 \"\" PASSWORD)", key)
			}
		}
		names[co.Username] = true
	}
	return nil
}

// statusPageSummary says who can sign in to the status page, for
// check-config: the coordinators' user names (not secret) and whether
// providers and intermediaries get sign-in links.
func (c *Config) statusPageSummary() string {
	var names []string
	for _, co := range c.pageCoordinators() {
		names = append(names, co.Username)
	}
	coord := "no coordinator login"
	if len(names) > 0 {
		coord = "coordinators " + strings.Join(names, ", ")
	}
	links := "no sign-in links for providers and intermediaries (http.public_url is not set)"
	if c.HTTP.PublicURL != "" {
		links = "sign-in links for providers and intermediaries to " + strings.TrimRight(c.HTTP.PublicURL, "/") + "/anmelden/link/…"
	}
	if len(names) == 0 && c.HTTP.PublicURL == "" {
		return "status page: off (neither a coordinator password nor http.public_url is set)"
	}
	return "status page: " + coord + "; " + links
}

// pageCoordinators are the status page's password logins: [coordinator]
// (when it has a password) and each of [[coordinators]].
func (c *Config) pageCoordinators() []web.Coordinator {
	var out []web.Coordinator
	if c.Coordinator.Password != "" {
		out = append(out, web.Coordinator{Username: c.Coordinator.Username, Password: c.Coordinator.Password})
	}
	for _, co := range c.Coordinators {
		out = append(out, web.Coordinator{Username: co.Username, Password: co.Password, PasswordHash: co.PasswordHash})
	}
	return out
}

// minPasswordLength is the shortest coordinator password serve accepts.
const minPasswordLength = 12

// commonPasswords are passwords of at least minPasswordLength characters
// that lists of leaked passwords rank first, and the obvious ones of this
// application; compared case-insensitively.
var commonPasswords = []string{
	"123456789012", "1234567890123", "12345678901234", "123456789abc", "1q2w3e4r5t6y",
	"qwertyuiop12", "qwertyuiopasdf", "qwerty123456", "password1234", "password12345",
	"passwort1234", "passwort12345", "administrator", "letmein12345", "iloveyou1234",
	"welcome12345", "willkommen12", "willkommen123", "koordinierung", "koordinierung1",
	"koordinierung123", "bestellungen", "bestellungen1", "mailflow1234", "changeme1234",
	"aaaaaaaaaaaa", "000000000000", "111111111111", "abcdefghijkl", "abc123456789",
}

// weakPassword says why a coordinator password is refused, or "".
func weakPassword(pw string) string {
	if n := len([]rune(pw)); n < minPasswordLength {
		return fmt.Sprintf("must be at least %d characters, not %d", minPasswordLength, n)
	}
	for _, common := range commonPasswords {
		if strings.EqualFold(pw, common) {
			return "is a commonly used password; choose another"
		}
	}
	return ""
}

// composer builds the reply tokens and the mail composer every verb that
// enqueues mail shares with the daemon.
func (c *Config) composer() (*mailflow.Tokens, *compose.Composer, error) {
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
	composer, err := compose.New(compose.Config{
		From: c.SMTP.From, ReplyAddress: c.Replies.Address, Coordinator: c.Coordinator.Email,
		Tokens: tokens, Templates: tmpl,
	})
	return tokens, composer, err
}

// envelopeSender gives every outbound message its own bounce address
// (VERP) under the replies address, so that a bounce marks a message
// failed only when it comes back to that address.
func (c *Config) envelopeSender(tokens *mailflow.Tokens) func(*mailflow.OutboxMessage) string {
	addr := c.Replies.Address
	if addr == "" {
		addr = c.SMTP.From
	}
	if a, err := mail.ParseAddress(addr); err == nil {
		addr = a.Address
	}
	return func(m *mailflow.OutboxMessage) string { return tokens.BounceAddress(addr, m.ID) }
}

// secrets returns the reply secrets, newest first.
func (c *Config) secrets() []string {
	var out []string
	if c.Replies.Secret != "" {
		out = append(out, c.Replies.Secret)
	}
	return append(out, c.Replies.OldSecrets...)
}
