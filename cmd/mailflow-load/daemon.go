package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Tokens and secrets of the generated configuration; the daemon runs on
// loopback for the length of one load run.
const (
	portalToken = "load-portal-token-0123456789"
	coordToken  = "load-coordinator-token-0123456789"
	replySecret = "load-reply-secret-0123456789abcdef"
)

// daemonProc is one `mailflow serve` child process.
type daemonProc struct {
	name   string
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	log    string // path of its log file
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

// daemonConfig writes the TOML configuration of one daemon run. Without
// withIMAP the daemon has no watcher: phase A creates orders and sends
// notifications while the replies wait unseen in Dovecot.
func (r *runner) daemonConfig(name string, withIMAP bool) (path, base string, err error) {
	port, err := freePort()
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[database]\ndriver = %q\ndsn = %q\n\n", r.cfg.driver, r.daemonDSN)
	fmt.Fprintf(&b, "[http]\nlisten = \"127.0.0.1:%d\"\n[[http.tokens]]\nname = \"portal\"\nrole = \"portal\"\ntoken = %q\n", port, portalToken)
	fmt.Fprintf(&b, "[[http.tokens]]\nname = \"load\"\nrole = \"coordinator\"\ntoken = %q\n\n", coordToken)
	fmt.Fprintf(&b, "[smtp]\nhost = \"127.0.0.1\"\nport = %d\ntls = \"none\"\nfrom = \"DVC Bestellservice <bestellungen@example.org>\"\n\n", r.sink.Port)
	if withIMAP {
		fmt.Fprintf(&b, "[imap]\nhost = \"127.0.0.1\"\nport = %d\ntls = \"none\"\nusername = %q\npassword = %q\nidle = true\npoll_interval = \"2m\"\n\n",
			r.dovecot.Port(), r.dovecot.User, r.dovecot.Password)
	}
	fmt.Fprintf(&b, "[replies]\naddress = \"bestellungen@example.org\"\nsecret = %q\n\n", replySecret)
	fmt.Fprintf(&b, "[coordinator]\nemail = \"koordinierung@example.org\"\n\n")
	fmt.Fprintf(&b, "[log]\nlevel = %q\n", r.cfg.logLevel)
	path = filepath.Join(r.dir, name+".toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", "", err
	}
	return path, fmt.Sprintf("http://127.0.0.1:%d", port), nil
}

// startDaemon runs `mailflow -config … serve` as a child process and waits
// until /healthz answers.
func (r *runner) startDaemon(ctx context.Context, name string, withIMAP bool) (*daemonProc, error) {
	cfgPath, base, err := r.daemonConfig(name, withIMAP)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(r.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(r.bin, "-config", cfgPath, "serve")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", r.bin, err)
	}
	d := &daemonProc{name: name, cmd: cmd, base: base, log: logPath, exited: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("daemon %s exited: %v\n%s", name, d.err, tail(logPath))
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("daemon %s did not answer /healthz within 30 s\n%s", name, tail(logPath))
		}
	}
}

// stop sends SIGTERM and waits for a clean exit; SIGKILL after 30 s.
func (d *daemonProc) stop() error {
	select {
	case <-d.exited:
		return d.err
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return d.err
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("daemon %s did not stop within 30 s of SIGTERM", d.name)
	}
}

// peakRSS is the process's high-water mark of resident memory (VmHWM).
func (d *daemonProc) peakRSS() (int64, error) {
	return procStatusBytes(d.cmd.Process.Pid, "VmHWM:")
}

// cpu is the CPU time (user and system) the process used so far.
func (d *daemonProc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may contain spaces; fields count
	// from after it: state is field 3, utime 14, stime 15 (proc(5)).
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", d.cmd.Process.Pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

func procStatusBytes(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			f := strings.Fields(rest) // "123456 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// api sends one request with a bearer token and returns the status code
// and body.
func (d *daemonProc) api(ctx context.Context, client *http.Client, method, path, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the end of a log file for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// buildDaemon compiles ./cmd/mailflow of the module the tool runs in.
func buildDaemon(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the mailflow module: run from its checkout or pass -bin")
	}
	bin := filepath.Join(dir, "mailflow")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/mailflow")
	cmd.Dir = filepath.Dir(mod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/mailflow: %v\n%s", err, b)
	}
	return bin, nil
}
