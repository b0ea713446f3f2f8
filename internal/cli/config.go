package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Config is what the CLI needs to reach a coordinator: its address and the caller's API key.
// It is stored as JSON: {"addr": "...", "token": "..."}.
type Config struct {
	Addr  string `json:"addr"`
	Token string `json:"token"`
}

// noConfig is what a command that needs a coordinator says when none is configured.
const noConfig = `no coordinator configured: run "iog up" or set IOG_ADDR and IOG_TOKEN`

// ConfigPath is where the CLI config lives: $IOG_CONFIG, else $XDG_CONFIG_HOME/iog/config.json,
// else $HOME/.config/iog/config.json. It is "" when none of these is set.
func ConfigPath(getenv func(string) string) string {
	if p := getenv("IOG_CONFIG"); p != "" {
		return p
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "iog", "config.json")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "iog", "config.json")
	}
	return ""
}

// WriteConfig stores c at path with mode 0600, creating the directories (0700) it needs. The
// file is replaced atomically so that a reader never sees half a config.
func WriteConfig(path string, c Config) error {
	if path == "" {
		return errors.New("write config: no path (set IOG_CONFIG or HOME)")
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	f, err := os.CreateTemp(dir, ".config-*.json")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	// CreateTemp already makes the file 0600; Chmod makes that explicit and umask-proof.
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	ok = true
	return nil
}

// readConfig reads the config file at path; a missing file is an empty config.
func readConfig(path string) (Config, error) {
	var c Config
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("read config %s: %w", path, err)
	}
	return c, nil
}

// resolveConfig layers the config file, then IOG_ADDR / IOG_TOKEN, then the --addr / --token
// flags (empty flag values mean "not given").
func resolveConfig(getenv func(string) string, flagAddr, flagToken string) (Config, error) {
	c, err := readConfig(ConfigPath(getenv))
	if err != nil {
		return c, err
	}
	if v := getenv("IOG_ADDR"); v != "" {
		c.Addr = v
	}
	if v := getenv("IOG_TOKEN"); v != "" {
		c.Token = v
	}
	if flagAddr != "" {
		c.Addr = flagAddr
	}
	if flagToken != "" {
		c.Token = flagToken
	}
	return c, nil
}

// baseURL turns a configured address ("127.0.0.1:7070" or "https://iog.example") into the
// client's base URL.
func baseURL(addr string) (string, error) {
	s := strings.TrimSpace(addr)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("invalid coordinator address %q: want HOST:PORT or an http(s) URL", addr)
	}
	return strings.TrimRight(s, "/"), nil
}
