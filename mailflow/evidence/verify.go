package evidence

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// Problem is one thing wrong with a bundle, naming the file.
type Problem struct {
	File string
	What string
}

func (p Problem) String() string { return p.File + ": " + p.What }

// Result is what Verify found.
type Result struct {
	// Manifest as read from the bundle; nil when it is missing or unreadable.
	Manifest *Manifest
	// Problems lists each changed, added or missing file and a bad
	// signature; none means the bundle is intact.
	Problems []Problem
	// KeyFromBundle: no key was given, so the signature was checked with
	// the key in the manifest. That proves the files are as signed, not
	// who signed them.
	KeyFromBundle bool
}

// Valid reports whether every file and the signature check out.
func (r *Result) Valid() bool { return len(r.Problems) == 0 }

// Verify checks a bundle: the manifest's signature (with key, or when key
// is nil with the key the manifest names), and every file against the
// manifest: a file changed, added or missing is a Problem naming it. An
// error means the archive could not be read as a ZIP at all.
func Verify(r io.ReaderAt, size int64, key ed25519.PublicKey) (*Result, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("evidence: not a readable ZIP archive: %w", err)
	}
	res := &Result{KeyFromBundle: key == nil}
	files := map[string]*zip.File{}
	var names []string
	for _, f := range zr.File {
		if f.FileInfo().IsDir() && f.UncompressedSize64 == 0 {
			continue // a folder entry, as zip tools add when an archive is repacked
		}
		if files[f.Name] != nil {
			res.add(f.Name, "added: the archive holds a second file of this name")
			continue
		}
		files[f.Name] = f
		names = append(names, f.Name)
	}
	manifestJSON, mok := res.read(files, ManifestName)
	sigText, sok := res.read(files, SignatureName)
	if !mok || !sok {
		return res, nil
	}
	var m Manifest
	if err := json.Unmarshal(manifestJSON, &m); err != nil {
		res.add(ManifestName, "changed: not valid JSON ("+err.Error()+")")
		return res, nil
	}
	res.Manifest = &m
	res.checkSignature(&m, manifestJSON, sigText, key)

	listed := map[string]ManifestFile{}
	for _, f := range m.Files {
		listed[f.Name] = f
	}
	for _, name := range names {
		if name == ManifestName || name == SignatureName {
			continue
		}
		want, ok := listed[name]
		if !ok {
			res.add(name, "added: not listed in the manifest")
			continue
		}
		sum, n, err := hashFile(files[name])
		switch {
		case err != nil:
			res.add(name, "changed: "+err.Error())
		case sum != want.SHA256 || n != want.Size:
			res.add(name, fmt.Sprintf("changed: %d bytes with SHA-256 %s, the manifest lists %d bytes with %s", n, sum, want.Size, want.SHA256))
		}
	}
	for _, f := range m.Files {
		if files[f.Name] == nil {
			res.add(f.Name, "missing: listed in the manifest, not in the archive")
		}
	}
	sort.SliceStable(res.Problems, func(i, j int) bool { return res.Problems[i].File < res.Problems[j].File })
	return res, nil
}

func (r *Result) add(file, what string) { r.Problems = append(r.Problems, Problem{file, what}) }

// read reads one of the signature's files whole (they are small).
func (r *Result) read(files map[string]*zip.File, name string) ([]byte, bool) {
	f := files[name]
	if f == nil {
		r.add(name, "missing: without it nothing in the archive can be checked")
		return nil, false
	}
	rc, err := f.Open()
	if err != nil {
		r.add(name, "changed: "+err.Error())
		return nil, false
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		r.add(name, "changed: "+err.Error())
		return nil, false
	}
	return b, true
}

func (r *Result) checkSignature(m *Manifest, manifestJSON, sigText []byte, key ed25519.PublicKey) {
	sig, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sigText)))
	if err != nil || len(sig) != ed25519.SignatureSize {
		r.add(SignatureName, "changed: not a base64 Ed25519 signature")
		return
	}
	bundleKey, err := ParsePublicKey(m.PublicKey)
	if err != nil {
		r.add(ManifestName, "changed: its public_key is unreadable ("+err.Error()+")")
		return
	}
	if key == nil {
		key = bundleKey
	} else if !key.Equal(bundleKey) {
		r.add(ManifestName, fmt.Sprintf("names the key %s, not the expected %s", m.PublicKey, PublicKeyText(key)))
	}
	if !ed25519.Verify(key, manifestJSON, sig) {
		r.add(ManifestName, "changed or not signed by "+PublicKeyText(key)+": the signature in "+SignatureName+" does not match")
	}
}

// hashFile returns the SHA-256 and size of one file's content; reading
// to the end also checks the ZIP's CRC-32.
func hashFile(f *zip.File) (string, int64, error) {
	rc, err := f.Open()
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
