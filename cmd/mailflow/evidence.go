package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/user"

	"mailflow/mailflow"
	"mailflow/mailflow/evidence"
	"mailflow/storage"
)

// errNoEvidenceKey: PostgreSQL installations name their signing key.
var errNoEvidenceKey = errors.New("evidence.key_path is not set: with PostgreSQL the daemons may run on several hosts, so the key that signs evidence bundles is configured, not placed beside the database")

// evidenceKey loads the installation's signing key, generating it on
// first use (the daemon's start, or the first CLI verb that needs it).
func evidenceKey(cfg *Config, log *slog.Logger) (ed25519.PrivateKey, error) {
	path := cfg.evidenceKeyPath()
	if path == "" {
		return nil, errNoEvidenceKey
	}
	key, created, err := evidence.LoadOrCreateKey(path)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("evidence signing key generated", "path", path, "public_key", evidence.PublicKeyText(key.Public().(ed25519.PublicKey)))
	}
	return key, nil
}

// newExporter builds the evidence exporter of the daemon and the CLI.
// alerter may be nil (no alert when a stored mail was altered).
func newExporter(cfg *Config, s *storage.Store, alerter mailflow.Alerter, log *slog.Logger) (*evidence.Exporter, error) {
	key, err := evidenceKey(cfg, log)
	if err != nil {
		return nil, err
	}
	return &evidence.Exporter{Store: s, Key: key, Alerter: alerter, Log: log}, nil
}

// orderEvidence runs `order evidence NUMBER -o FILE.zip`. The bundle is
// written beside FILE and renamed when complete, so FILE is never a half
// bundle.
func (a *app) orderEvidence(ctx context.Context, s *storage.Store, number, out string) error {
	if out == "" {
		fmt.Fprintln(a.stderr, "usage: mailflow order evidence NUMBER -o FILE.zip")
		return errUsage
	}
	var alerter mailflow.Alerter
	if _, composer, err := a.cfg.composer(); err == nil {
		alerter = composer
	}
	exp, err := newExporter(a.cfg, s, alerter, a.log)
	if err != nil {
		return err
	}
	actor := "cli"
	if u, err := user.Current(); err == nil {
		actor = "cli:" + u.Username
	}
	part := out + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	m, err := exp.Export(ctx, number, actor, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, out)
	}
	if err != nil {
		os.Remove(part)
		return err
	}
	if a.json {
		return a.printJSON(m)
	}
	fmt.Fprintf(a.stdout, "wrote %s: %d files, signed with %s\n", out, len(m.Files), m.PublicKey)
	return nil
}

// evidenceVerb runs `evidence key` and `evidence verify FILE.zip [-key PUBKEY]`.
func (a *app) evidenceVerb(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "key" && args[0] != "verify") {
		fmt.Fprintln(a.stderr, "usage: mailflow evidence key | evidence verify FILE.zip [-key PUBKEY]")
		return errUsage
	}
	if args[0] == "key" {
		var asPEM bool
		if _, err := a.verbFlags("evidence key", args[1:], func(fs *flag.FlagSet) {
			fs.BoolVar(&asPEM, "pem", false, "print a PEM PUBLIC KEY, for tools such as openssl")
		}, 0, "[-pem]"); err != nil {
			return err
		}
		key, err := evidenceKey(a.cfg, a.log)
		if err != nil {
			return err
		}
		pub := key.Public().(ed25519.PublicKey)
		switch {
		case a.json:
			return a.printJSON(map[string]string{"public_key": evidence.PublicKeyText(pub), "path": a.cfg.evidenceKeyPath()})
		case asPEM:
			der, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				return err
			}
			return pem.Encode(a.stdout, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
		}
		fmt.Fprintln(a.stdout, evidence.PublicKeyText(pub))
		return nil
	}
	var keyArg string
	pos, err := a.verbFlags("evidence verify", args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&keyArg, "key", "", "the installation's public key (as `mailflow evidence key` prints it), or a file holding it; default: the key in the bundle")
	}, 1, "FILE.zip [-key PUBKEY]")
	if err != nil {
		return err
	}
	var key ed25519.PublicKey
	if keyArg != "" {
		text := keyArg
		if b, err := os.ReadFile(keyArg); err == nil {
			text = string(b)
		}
		if key, err = evidence.ParsePublicKey(text); err != nil {
			fmt.Fprintf(a.stderr, "mailflow: -key: %v\n", err)
			return errUsage
		}
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	res, err := evidence.Verify(f, fi.Size(), key)
	if err != nil {
		return err
	}
	if a.json {
		if err := a.printJSON(verifyJSON(res)); err != nil {
			return err
		}
	} else {
		for _, p := range res.Problems {
			fmt.Fprintf(a.stdout, "FAIL %s\n", p)
		}
	}
	if !res.Valid() {
		return fmt.Errorf("%s is not valid: %d problem(s)", pos[0], len(res.Problems))
	}
	if !a.json {
		fmt.Fprintf(a.stdout, "ok: order %s, %d files as listed, manifest signed by %s, exported %s by mailflow %s\n",
			res.Manifest.Order, len(res.Manifest.Files), res.Manifest.PublicKey, res.Manifest.ExportedAt.Format("2006-01-02 15:04:05 MST"), res.Manifest.Version)
		if res.KeyFromBundle {
			fmt.Fprintln(a.stdout, "note: checked with the key in the bundle; pass -key with the installation's key (mailflow evidence key) to know who signed it")
		}
	}
	return nil
}

func verifyJSON(res *evidence.Result) any {
	type problem struct {
		File string `json:"file"`
		What string `json:"what"`
	}
	out := struct {
		Valid         bool               `json:"valid"`
		KeyFromBundle bool               `json:"key_from_bundle"`
		Problems      []problem          `json:"problems"`
		Manifest      *evidence.Manifest `json:"manifest,omitempty"`
	}{Valid: res.Valid(), KeyFromBundle: res.KeyFromBundle, Problems: []problem{}, Manifest: res.Manifest}
	for _, p := range res.Problems {
		out.Problems = append(out.Problems, problem{p.File, p.What})
	}
	return out
}
