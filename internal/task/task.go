// Package task reads the task files of `iog launch`: one YAML document that says what to run
// (setup, run, workdir, outputs) and on what (nodes, resources), in the shape SkyPilot and
// dstack users know. It parses strictly (unknown fields, wrong types and bad values are errors
// that name the line and the field), publishes a JSON Schema of the format, and maps a file to
// and from the request of `iog cluster create`, so that every flag has its field.
package task

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds a task file; a larger one is refused before it is parsed.
const MaxFileSize = 1 << 20

// Limits on the values of a task file, the same as the coordinator's where it has one.
const (
	MaxNodes      = 256
	MaxHours      = 24 * 366
	MaxRetries    = 10
	MaxTasks      = 10000
	maxNameLen    = 64
	maxScriptLen  = 64 << 10
	maxImageLen   = 512
	maxEnv        = 128
	maxEnvValue   = 32 << 10
	maxPorts      = 32
	maxPathLen    = 1024
	maxGPUPerNode = 64
)

// Types are the values of `type:`: the cluster types, and "array" (independent tasks).
var Types = []string{"process", "container", "torch", "ray", "array"}

// Isolations are the values of `isolation:` (the --isolation flag).
var Isolations = []string{"sandbox", "container", "gvisor"}

// Tiers are the values of `resources.tier:`.
var Tiers = []string{"low", "standard", "high", "ultra"}

// Currencies and Commitments are the values of `currency:` and `commit:`.
var (
	Currencies  = []string{"IO", "USDC"}
	Commitments = []string{"hourly", "daily", "weekly"}
)

// File is one task file.
type File struct {
	Name      string            `yaml:"name,omitempty" json:"name,omitempty"`
	Type      string            `yaml:"type,omitempty" json:"type,omitempty"`
	Nodes     int               `yaml:"nodes,omitempty" json:"nodes,omitempty"`
	Resources Resources         `yaml:"resources,omitempty" json:"resources,omitzero"`
	Image     string            `yaml:"image,omitempty" json:"image,omitempty"`
	Isolation string            `yaml:"isolation,omitempty" json:"isolation,omitempty"`
	Workdir   string            `yaml:"workdir,omitempty" json:"workdir,omitempty"`
	Setup     string            `yaml:"setup,omitempty" json:"setup,omitempty"`
	Run       string            `yaml:"run,omitempty" json:"run,omitempty"`
	Env       map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	Secrets   map[string]string `yaml:"secrets,omitempty" json:"secrets,omitempty"`
	Ports     []Port            `yaml:"ports,omitempty" json:"ports,omitempty"`
	Jupyter   bool              `yaml:"jupyter,omitempty" json:"jupyter,omitempty"`
	Outputs   string            `yaml:"outputs,omitempty" json:"outputs,omitempty"`
	Hours     int               `yaml:"hours,omitempty" json:"hours,omitempty"`
	Retries   int               `yaml:"retries,omitempty" json:"retries,omitempty"`
	Tasks     int               `yaml:"tasks,omitempty" json:"tasks,omitempty"`
	Currency  string            `yaml:"currency,omitempty" json:"currency,omitempty"`
	Commit    string            `yaml:"commit,omitempty" json:"commit,omitempty"`
}

// Resources is what each node needs.
type Resources struct {
	// GPU is "MODEL", "MODEL:COUNT", "MODEL,MODEL" (any of several models) or "any:COUNT".
	GPU      string `yaml:"gpu,omitempty" json:"gpu,omitempty"`
	CPUs     int    `yaml:"cpus,omitempty" json:"cpus,omitempty"`
	Memory   string `yaml:"memory,omitempty" json:"memory,omitempty"`
	Region   string `yaml:"region,omitempty" json:"region,omitempty"`
	Tier     string `yaml:"tier,omitempty" json:"tier,omitempty"`
	MaxPrice string `yaml:"max_price,omitempty" json:"max_price,omitempty"`
}

// Error is a mistake in a task file, at a line (0 when the file has none to point at).
type Error struct {
	File  string // the file's name as the user gave it
	Line  int
	Field string // dotted path, like resources.gpu
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// fields are the known keys at each level, by dotted path of the mapping they are in.
var fields = map[string][]string{
	"": {"name", "type", "nodes", "resources", "image", "isolation", "workdir", "setup", "run",
		"env", "secrets", "ports", "jupyter", "outputs", "hours", "retries", "tasks", "currency", "commit"},
	"resources": {"gpu", "cpus", "memory", "region", "tier", "max_price"},
}

// maps are the fields whose keys are the user's own (environment variable names).
var userMaps = []string{"env", "secrets"}

// Parse reads one task file. name is only for errors. Defaults are filled in: type process,
// one node, one hour.
func Parse(name string, r io.Reader) (File, error) {
	var f File
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return f, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return f, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxFileSize)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return f, &Error{File: name, Msg: "empty: a task file needs at least run (or image)"}
		}
		return f, yamlError(name, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return f, &Error{File: name, Line: more.Line, Msg: "more than one YAML document"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	lines := map[string]int{}
	if err := walk(name, root, "", lines); err != nil {
		return f, err
	}
	if err := root.Decode(&f); err != nil {
		return f, yamlError(name, err)
	}
	f.defaults()
	if err := f.validate(); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.File = name
			e.Line = lines[e.Field]
			if e.Line == 0 {
				e.Line = lines[strings.SplitN(e.Field, ".", 2)[0]]
			}
		}
		return f, err
	}
	return f, nil
}

// walk checks the keys of every mapping against the known fields, and records the line of
// each field.
func walk(name string, n *yaml.Node, path string, lines map[string]int) error {
	if n.Kind == yaml.AliasNode {
		return &Error{File: name, Line: n.Line, Field: path, Msg: "YAML aliases are not allowed"}
	}
	known, isStruct := fields[path]
	if !isStruct && !slices.Contains(userMaps, path) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return nil
		}
		what := "the task file"
		if path != "" {
			what = path
		}
		return &Error{File: name, Line: n.Line, Field: path, Msg: what + " must be a mapping of key: value"}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		field := key
		if path != "" {
			field = path + "." + key
		}
		if k.Kind != yaml.ScalarNode {
			return &Error{File: name, Line: k.Line, Field: path, Msg: "keys must be plain strings"}
		}
		if seen[key] {
			return &Error{File: name, Line: k.Line, Field: field, Msg: "given twice"}
		}
		seen[key] = true
		if isStruct && !slices.Contains(known, key) {
			return &Error{File: name, Line: k.Line, Field: field, Msg: "unknown field (known: " + strings.Join(known, ", ") + ")"}
		}
		lines[field] = k.Line
		if v.Kind == yaml.AliasNode {
			return &Error{File: name, Line: v.Line, Field: field, Msg: "YAML aliases are not allowed"}
		}
		if err := walk(name, v, field, lines); err != nil {
			return err
		}
	}
	return nil
}

// yamlError turns the YAML library's error into one that names the file and line.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		// "line 3: cannot unmarshal !!str `two` into int"
		msg := te.Errors[0]
		line := 0
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			num, tail, _ := strings.Cut(rest, ": ")
			if l, err := strconv.Atoi(num); err == nil {
				line, msg = l, tail
			}
		}
		return &Error{File: name, Line: line, Msg: "wrong type: " + msg}
	}
	msg := err.Error()
	line := 0
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		num, tail, _ := strings.Cut(rest, ": ")
		if l, err := strconv.Atoi(num); err == nil {
			line, msg = l, tail
		}
	}
	return &Error{File: name, Line: line, Msg: "not valid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func (f *File) defaults() {
	if f.Type == "" {
		f.Type = "process"
	}
	if f.Nodes == 0 {
		f.Nodes = 1
	}
	if f.Hours == 0 {
		f.Hours = 1
	}
}

func invalid(field, format string, args ...any) error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// validate checks the values; errors name the field (Parse adds the line).
func (f *File) validate() error {
	if len(f.Name) > maxNameLen || !printable(f.Name) {
		return invalid("name", "at most %d printable characters", maxNameLen)
	}
	f.Type = strings.ToLower(f.Type)
	if !slices.Contains(Types, f.Type) {
		return invalid("type", "%q: want one of %s", f.Type, strings.Join(Types, ", "))
	}
	if f.Nodes < 1 || f.Nodes > MaxNodes {
		return invalid("nodes", "%d: want 1 to %d", f.Nodes, MaxNodes)
	}
	if err := f.Resources.validate(); err != nil {
		return err
	}
	if len(f.Image) > maxImageLen || strings.ContainsAny(f.Image, " \t\r\n") {
		return invalid("image", "want an image reference without spaces, at most %d characters", maxImageLen)
	}
	f.Isolation = strings.ToLower(f.Isolation)
	if f.Isolation != "" && !slices.Contains(Isolations, f.Isolation) {
		return invalid("isolation", "%q: want one of %s", f.Isolation, strings.Join(Isolations, ", "))
	}
	if err := checkPath("workdir", f.Workdir); err != nil {
		return err
	}
	if err := checkPath("outputs", f.Outputs); err != nil {
		return err
	}
	if o := f.Outputs; o != "" && (strings.HasPrefix(o, "/") || o == ".." || strings.HasPrefix(o, "../") || strings.Contains(o, "/../") || strings.HasSuffix(o, "/..")) {
		return invalid("outputs", "%q: want a directory inside the work directory, like out", o)
	}
	if len(f.Setup) > maxScriptLen {
		return invalid("setup", "longer than %d bytes; put it in a script in the workdir", maxScriptLen)
	}
	if len(f.Run) > maxScriptLen {
		return invalid("run", "longer than %d bytes; put it in a script in the workdir", maxScriptLen)
	}
	if strings.ContainsRune(f.Setup+f.Run, 0) {
		return invalid("run", "contains a NUL byte")
	}
	if f.Run == "" && f.Image == "" && f.Type != "ray" {
		return invalid("run", "required (or an image whose own command runs)")
	}
	if f.Setup != "" && f.Run == "" {
		return invalid("setup", "needs a run: setup runs before it")
	}
	if err := checkEnv("env", f.Env); err != nil {
		return err
	}
	if err := checkEnv("secrets", f.Secrets); err != nil {
		return err
	}
	for k := range f.Secrets {
		if _, dup := f.Env[k]; dup {
			return invalid("secrets."+k, "also set in env; a name is either a secret or not")
		}
	}
	if len(f.Ports) > maxPorts {
		return invalid("ports", "at most %d ports", maxPorts)
	}
	seenPort := map[int]bool{}
	for _, p := range f.Ports {
		if p.Port < 1 || p.Port > 65535 {
			return invalid("ports", "%d: want a port from 1 to 65535", p.Port)
		}
		if seenPort[p.Port] {
			return invalid("ports", "%d is given twice", p.Port)
		}
		seenPort[p.Port] = true
	}
	if f.Hours < 1 || f.Hours > MaxHours {
		return invalid("hours", "%d: want 1 to %d", f.Hours, MaxHours)
	}
	if f.Retries < 0 || f.Retries > MaxRetries {
		return invalid("retries", "%d: want 0 to %d", f.Retries, MaxRetries)
	}
	if f.Retries > 0 && f.Type != "array" {
		return invalid("retries", "only for type: array (independent tasks); a %s cluster's nodes depend on each other", f.Type)
	}
	if f.Tasks < 0 || f.Tasks > MaxTasks {
		return invalid("tasks", "%d: want 0 to %d", f.Tasks, MaxTasks)
	}
	if f.Tasks > 0 && f.Type != "array" {
		return invalid("tasks", "only for type: array")
	}
	if f.Tasks > 0 && f.Tasks < f.Nodes {
		return invalid("tasks", "%d tasks on %d nodes would leave nodes idle; want at least nodes", f.Tasks, f.Nodes)
	}
	if f.Currency != "" {
		if c := strings.ToUpper(f.Currency); slices.Contains(Currencies, c) {
			f.Currency = c
		} else {
			return invalid("currency", "%q: want IO or USDC", f.Currency)
		}
	}
	f.Commit = strings.ToLower(f.Commit)
	if f.Commit != "" && !slices.Contains(Commitments, f.Commit) {
		return invalid("commit", "%q: want hourly, daily or weekly", f.Commit)
	}
	return nil
}

func (r *Resources) validate() error {
	if _, _, err := r.Models(); err != nil {
		return err
	}
	if r.CPUs < 0 || r.CPUs > 4096 {
		return invalid("resources.cpus", "%d: want 0 to 4096", r.CPUs)
	}
	if r.Memory != "" {
		if _, err := ParseSize(r.Memory); err != nil {
			return invalid("resources.memory", "%v", err)
		}
	}
	if len(r.Region) > 64 || !printable(r.Region) || strings.Contains(r.Region, " ") {
		return invalid("resources.region", "want a region name without spaces")
	}
	r.Tier = strings.ToLower(r.Tier)
	if r.Tier != "" && !slices.Contains(Tiers, r.Tier) {
		return invalid("resources.tier", "%q: want one of %s", r.Tier, strings.Join(Tiers, ", "))
	}
	if r.MaxPrice != "" && !isDecimal(r.MaxPrice) {
		return invalid("resources.max_price", "%q: want a price per node-hour, like 2.50", r.MaxPrice)
	}
	return nil
}

// Models splits resources.gpu into its models and the GPUs per node (0: not given).
func (r Resources) Models() (models []string, perNode int, err error) {
	if r.GPU == "" {
		return nil, 0, nil
	}
	spec, count, hasCount := strings.Cut(r.GPU, ":")
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 || n > maxGPUPerNode {
			return nil, 0, invalid("resources.gpu", "%q: the count after : must be 1 to %d", r.GPU, maxGPUPerNode)
		}
		perNode = n
	}
	if strings.EqualFold(strings.TrimSpace(spec), "any") {
		return nil, perNode, nil // a count of GPUs of any model
	}
	for m := range strings.SplitSeq(spec, ",") {
		m = strings.TrimSpace(m)
		if m == "" || len(m) > 64 || !modelName(m) {
			return nil, 0, invalid("resources.gpu", "%q: want MODEL, MODEL:COUNT or MODEL,MODEL (like H100-80GB:8)", r.GPU)
		}
		if !slices.Contains(models, m) {
			models = append(models, m)
		}
	}
	return models, perNode, nil
}

func modelName(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == ' ':
		default:
			return false
		}
	}
	return true
}

func checkPath(field, p string) error {
	if len(p) > maxPathLen || strings.ContainsRune(p, 0) {
		return invalid(field, "want a path of at most %d bytes", maxPathLen)
	}
	return nil
}

func checkEnv(field string, env map[string]string) error {
	if len(env) > maxEnv {
		return invalid(field, "at most %d variables", maxEnv)
	}
	for k, v := range env {
		if !IsEnvKey(k) {
			return invalid(field+"."+k, "want a name made of letters, digits and _, not starting with a digit")
		}
		if strings.HasPrefix(k, "IOG_") {
			return invalid(field+"."+k, "names starting with IOG_ are set by iog")
		}
		if len(v) > maxEnvValue || strings.ContainsRune(v, 0) {
			return invalid(field+"."+k, "a value of at most %d bytes without NUL", maxEnvValue)
		}
	}
	return nil
}

// IsEnvKey reports whether k is a portable environment variable name.
func IsEnvKey(k string) bool {
	for i, r := range k {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return k != "" && len(k) <= 128
}

func isDecimal(s string) bool {
	whole, frac, dot := strings.Cut(s, ".")
	return digits(whole) && (!dot || digits(frac)) && len(s) <= 32
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ParseSize reads a size like 512MiB, 16G or 1024 (bytes).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 || i > 15 {
		return 0, fmt.Errorf("%q: want a size like 512MiB or 16G", s)
	}
	n, _ := strconv.ParseInt(t[:i], 10, 64)
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1e3, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1e6, "mib": 1 << 20, "g": 1 << 30, "gb": 1e9, "gib": 1 << 30,
		"t": 1 << 40, "tb": 1e12, "tib": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, KiB, MiB, GiB, TiB, or K, M, G, T)", s, unit)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return n * mult, nil
}
