// Package xrechnungtest runs the XRechnung validator named by
// MAILFLOW_XRECHNUNG_VALIDATE over invoices a test wrote: the official
// XSD, EN 16931 and XRechnung rules, offline (docs/design.md §5).
package xrechnungtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Validator returns the path of the validator, or skips the test with the
// reason when there is none or java is missing. Without
// MAILFLOW_XRECHNUNG_VALIDATE it looks for shared/xrechnung/validate
// beside the repository, where development machines keep it; CI sets the
// variable.
func Validator(t testing.TB) string {
	t.Helper()
	path := os.Getenv("MAILFLOW_XRECHNUNG_VALIDATE")
	if path == "" {
		root, err := repoRoot()
		if err != nil {
			t.Skipf("no XRechnung validator: MAILFLOW_XRECHNUNG_VALIDATE unset and %v", err)
		}
		path = filepath.Join(root, "..", "shared", "xrechnung", "validate")
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no XRechnung validator (set MAILFLOW_XRECHNUNG_VALIDATE): %v", err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Skipf("the XRechnung validator needs java: %v", err)
	}
	return path
}

// Validate runs the validator once over all files and fails the test
// unless every file is valid without a fatal or error finding. Warnings
// are logged.
func Validate(t testing.TB, files ...string) {
	t.Helper()
	if len(files) == 0 {
		t.Fatal("xrechnungtest: no files to validate")
	}
	v := Validator(t)
	out, err := exec.Command(v, files...).CombinedOutput()
	report := string(out)
	t.Logf("validator:\n%s", report)
	if err != nil {
		t.Fatalf("validator: %v", err)
	}
	valid := 0
	for _, line := range strings.Split(report, "\n") {
		if strings.HasSuffix(line, ": valid") {
			valid++
		}
		if strings.Contains(line, "[fatal]") || strings.Contains(line, "[error]") {
			t.Errorf("finding: %s", line)
		}
	}
	if valid != len(files) {
		t.Errorf("validator: %d of %d files valid", valid, len(files))
	}
}

// WriteFiles writes each invoice to dir under its name and returns the
// paths.
func WriteFiles(t testing.TB, dir string, invoices map[string][]byte) []string {
	t.Helper()
	var paths []string
	for name, b := range invoices {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// repoRoot is the directory holding go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
