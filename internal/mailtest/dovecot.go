package mailtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/emersion/go-imap/v2"
)

// EnvDovecot names the variable with the path of the dovecot binary for
// tests; without it "dovecot" is looked up in PATH and /usr/sbin.
const EnvDovecot = "MAILFLOW_TEST_DOVECOT"

// DovecotPath returns the dovecot binary to run, or an error saying why
// there is none (tests skip with it).
func DovecotPath() (string, error) {
	if p := os.Getenv(EnvDovecot); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("mailtest: %s=%s: %w", EnvDovecot, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/dovecot"); err == nil { // sbin is often not in PATH
		return "/usr/sbin/dovecot", nil
	}
	return "", fmt.Errorf("mailtest: no dovecot binary (set %s or install dovecot-imapd)", EnvDovecot)
}

// Dovecot is a real Dovecot IMAP server on 127.0.0.1, plaintext, with one
// user and Maildir storage, started from a throwaway configuration.
type Dovecot struct {
	User, Password string
	Version        string // as "dovecot --version" prints it

	addr    string
	dir     string
	runtime string // base_dir and mail, removed by Close when not under dir
	cmd     *exec.Cmd
	exited  chan struct{}
}

// StartDovecot runs "dovecot -F" with a configuration written to dir, which
// also holds its log and state. Running as root (as in CI), Dovecot refuses
// to serve mail as root and to run its login process as root, so the
// login process runs as dovenull (or nobody) and mail as nobody; then the
// runtime directory and the Maildir live in a new world-traversable
// directory under os.TempDir(), since dir (a test's TempDir) is private to
// root. Otherwise everything runs as the current user inside dir.
func StartDovecot(dir string) (*Dovecot, error) {
	bin, err := DovecotPath()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("mailtest: dovecot --version: %w", err)
	}
	d := &Dovecot{User: "mailflow", Password: "mailflow-test-secret", Version: strings.TrimSpace(string(out)), dir: dir}
	// A port picked free may be taken before dovecot binds it: retry.
	for attempt := 0; ; attempt++ {
		err = d.start(bin)
		if err == nil {
			return d, nil
		}
		d.Close()
		if attempt == 2 || !strings.Contains(err.Error(), "in use") {
			return nil, err
		}
	}
}

type dovecotConfig struct {
	Dir, BaseDir, MailDir string
	Port                  int
	InternalUser          string
	InternalGroup         string
	LoginUser             string
	MailUID, MailGID      int
}

func (d *Dovecot) start(bin string) error {
	cfg := dovecotConfig{Dir: d.dir}
	os.Remove(filepath.Join(d.dir, "dovecot.log")) // of an earlier attempt
	root := os.Geteuid() == 0
	runtime := d.dir
	if root || len(d.dir) > 60 { // unix socket paths are limited to 108 bytes
		rt, err := os.MkdirTemp("", "mfdovecot")
		if err != nil {
			return err
		}
		if err := os.Chmod(rt, 0o755); err != nil {
			return err
		}
		d.runtime = rt
		runtime = rt
	}
	cfg.BaseDir = filepath.Join(runtime, "run")
	cfg.MailDir = filepath.Join(runtime, "mail")
	for _, p := range []string{cfg.BaseDir, cfg.MailDir, filepath.Join(d.dir, "state")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
	}
	if root {
		cfg.InternalUser, cfg.InternalGroup = "root", "root"
		cfg.LoginUser = "nobody"
		if _, err := user.Lookup("dovenull"); err == nil {
			cfg.LoginUser = "dovenull"
		}
		nobody, err := user.Lookup("nobody")
		if err != nil {
			return fmt.Errorf("mailtest: dovecot as root needs a user nobody: %w", err)
		}
		cfg.MailUID, _ = strconv.Atoi(nobody.Uid)
		cfg.MailGID, _ = strconv.Atoi(nobody.Gid)
		if err := os.Chown(cfg.MailDir, cfg.MailUID, cfg.MailGID); err != nil {
			return err
		}
	} else {
		me, err := user.Current()
		if err != nil {
			return err
		}
		g, err := user.LookupGroupId(me.Gid)
		if err != nil {
			return err
		}
		cfg.InternalUser, cfg.InternalGroup, cfg.LoginUser = me.Username, g.Name, me.Username
		cfg.MailUID, cfg.MailGID = os.Geteuid(), os.Getegid()
	}
	port, err := dovecotFreePort()
	if err != nil {
		return err
	}
	cfg.Port = port
	d.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	tmpl := dovecot23Config
	if dovecotAtLeast(d.Version, 2, 4) {
		tmpl = dovecot24Config
	}
	var conf bytes.Buffer
	if err := template.Must(template.New("dovecot").Parse(tmpl)).Execute(&conf, cfg); err != nil {
		return err
	}
	confPath := filepath.Join(d.dir, "dovecot.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o644); err != nil {
		return err
	}
	passwd := fmt.Sprintf("%s:{PLAIN}%s::::::\n", d.User, d.Password)
	if err := os.WriteFile(filepath.Join(d.dir, "passwd"), []byte(passwd), 0o600); err != nil {
		return err
	}

	out, err := os.Create(filepath.Join(d.dir, "dovecot.out"))
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own descriptor
	d.cmd = exec.Command(bin, "-F", "-c", confPath)
	d.cmd.Stdout = out
	d.cmd.Stderr = out
	// Its own process group, so that Close can end the children too.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("mailtest: start dovecot: %w", err)
	}
	d.exited = make(chan struct{})
	go func() {
		d.cmd.Wait()
		close(d.exited)
	}()
	return d.waitReady()
}

// waitReady waits until dovecot dovecotGreets on its port, or exits.
func (d *Dovecot) waitReady() error {
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("mailtest: dovecot exited: %s", d.logTail())
		case <-deadline.C:
			return fmt.Errorf("mailtest: dovecot did not greet on %s: %s", d.addr, d.logTail())
		case <-tick.C:
			if dovecotGreets(d.addr) {
				return nil
			}
			if strings.Contains(d.logTail(), "Address already in use") {
				return fmt.Errorf("mailtest: dovecot: port in use")
			}
		}
	}
}

func dovecotGreets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "* OK")
}

func dovecotFreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

var dovecotVersionRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

func dovecotAtLeast(version string, major, minor int) bool {
	m := dovecotVersionRE.FindStringSubmatch(version)
	if m == nil {
		return false
	}
	ma, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	return ma > major || ma == major && mi >= minor
}

func (d *Dovecot) logTail() string {
	out, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.out"))
	log, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
	b := append(out, log...)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Log returns the end of Dovecot's log, for failure messages.
func (d *Dovecot) Log() string { return d.logTail() }

// Addr is the server's host:port.
func (d *Dovecot) Addr() string { return d.addr }

// Host is the server's IP address.
func (d *Dovecot) Host() string { return "127.0.0.1" }

// Port is the server's port.
func (d *Dovecot) Port() int {
	_, p, _ := net.SplitHostPort(d.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Append adds a message to a mailbox with APPEND.
func (d *Dovecot) Append(mailbox string, raw []byte) error {
	return imapAppend(d.addr, d.User, d.Password, mailbox, raw)
}

// CreateMailbox creates a mailbox.
func (d *Dovecot) CreateMailbox(name string) error {
	return imapCreate(d.addr, d.User, d.Password, name)
}

// Messages lists a mailbox in UID order.
func (d *Dovecot) Messages(mailbox string) ([]IMAPMessage, error) {
	return imapMessages(d.addr, d.User, d.Password, mailbox)
}

// UIDs lists the UIDs in a mailbox.
func (d *Dovecot) UIDs(mailbox string) ([]uint32, error) {
	return imapUIDs(d.addr, d.User, d.Password, mailbox)
}

// AddFlags adds flags to a message.
func (d *Dovecot) AddFlags(mailbox string, uid uint32, flags ...imap.Flag) error {
	return imapStoreFlags(d.addr, d.User, d.Password, mailbox, uid, imap.StoreFlagsAdd, flags)
}

// RemoveFlags removes flags from a message.
func (d *Dovecot) RemoveFlags(mailbox string, uid uint32, flags ...imap.Flag) error {
	return imapStoreFlags(d.addr, d.User, d.Password, mailbox, uid, imap.StoreFlagsDel, flags)
}

// Close stops dovecot: SIGTERM, and after five seconds SIGKILL to its
// process group. It removes the runtime directory made outside dir.
func (d *Dovecot) Close() error {
	var err error
	if d.cmd != nil && d.cmd.Process != nil && d.exited != nil {
		pid := d.cmd.Process.Pid
		d.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(5 * time.Second)
		select {
		case <-d.exited:
		case <-t.C:
			err = errors.New("mailtest: dovecot did not stop on SIGTERM")
			syscall.Kill(-pid, syscall.SIGKILL)
			<-d.exited
		}
		t.Stop()
		d.cmd = nil
	}
	if d.runtime != "" {
		os.RemoveAll(d.runtime)
		d.runtime = ""
	}
	return err
}

// dovecot23Config is for Dovecot 2.3. login_chroot is off since it needs
// root; protocols imap only; no SSL, cleartext login allowed on loopback.
const dovecot23Config = `# mailflow test server, Dovecot 2.3
base_dir = {{.BaseDir}}
state_dir = {{.Dir}}/state
log_path = {{.Dir}}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {{.InternalUser}}
default_internal_group = {{.InternalGroup}}
default_login_user = {{.LoginUser}}
first_valid_uid = {{.MailUID}}
first_valid_gid = {{.MailGID}}
mail_uid = {{.MailUID}}
mail_gid = {{.MailGID}}
mail_location = maildir:{{.MailDir}}/%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {{.Dir}}/passwd
}
userdb {
  driver = static
  args = uid={{.MailUID}} gid={{.MailGID}} home={{.MailDir}}/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    port = {{.Port}}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`

// dovecot24Config is the same for Dovecot 2.4, whose settings were
// renamed (dovecot_config_version must come first).
const dovecot24Config = `dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
# mailflow test server, Dovecot 2.4
base_dir = {{.BaseDir}}
state_dir = {{.Dir}}/state
log_path = {{.Dir}}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
auth_allow_cleartext = yes
auth_mechanisms = plain login
default_internal_user = {{.InternalUser}}
default_internal_group = {{.InternalGroup}}
default_login_user = {{.LoginUser}}
first_valid_uid = {{.MailUID}}
first_valid_gid = {{.MailGID}}
mail_uid = {{.MailUID}}
mail_gid = {{.MailGID}}
mail_driver = maildir
mail_home = {{.MailDir}}/%{user}
mail_path = {{.MailDir}}/%{user}
namespace inbox {
  inbox = yes
}
passdb passwd-file {
  passwd_file_path = {{.Dir}}/passwd
}
userdb static {
  fields {
    uid = {{.MailUID}}
    gid = {{.MailGID}}
    home = {{.MailDir}}/%{user}
  }
}
service imap-login {
  chroot =
  inet_listener imap {
    port = {{.Port}}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`

// DovecotFor starts a Dovecot of its own for test t, stopped when the
// test ends; a failed test logs Dovecot's log. Without a Dovecot binary
// the test is skipped (CI installs dovecot-imapd).
func DovecotFor(t testing.TB) *Dovecot {
	t.Helper()
	if _, err := DovecotPath(); err != nil {
		t.Skip("no Dovecot here (CI installs dovecot-imapd): ", err)
	}
	d, err := StartDovecot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dovecot %s log:\n%s", d.Version, d.Log())
		}
		d.Close()
	})
	return d
}
