package worker

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// loadKey reads the device key from dir, making one on first start. The private key is written
// 0600 and never leaves the device.
func loadKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, "device.key")
	b, err := os.ReadFile(path)
	if err == nil {
		seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("worker: %s is not a device key; remove it to make a new device", path)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("worker: read key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("worker: state dir: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeFile(path, base64.StdEncoding.EncodeToString(priv.Seed())+"\n"); err != nil {
		return nil, err
	}
	return priv, nil
}

func writeFile(path, data string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		return fmt.Errorf("worker: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("worker: write %s: %w", path, err)
	}
	return nil
}

func readDeviceID(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "device.id"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
