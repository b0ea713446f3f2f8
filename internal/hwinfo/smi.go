package hwinfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/iognet/iog/api"
)

const (
	smiCommand = "nvidia-smi"
	smiFormat  = "--format=csv,noheader,nounits"
	// The column orders ParseSMIInventory and ParseSMITelemetry expect.
	smiInventoryFields = "index,uuid,name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current"
	smiTelemetryFields = "uuid,utilization.gpu,temperature.gpu,power.draw,memory.used"
	// smiTimeout bounds one nvidia-smi run: it hangs rather than fails when
	// a GPU has fallen off the bus.
	smiTimeout = 30 * time.Second
)

// SMI finds GPUs by running nvidia-smi, for hosts where NVML cannot be loaded
// into this process (a container with the tool mounted but not the library,
// a library of the wrong architecture).
type SMI struct {
	run func(ctx context.Context, args ...string) ([]byte, error)
}

// NewSMI returns a detector that runs nvidia-smi through run, which returns
// the command's standard output. A nil run executes "nvidia-smi" from PATH
// and reports ErrNoDriver when it is not there or says the driver is not
// loaded.
func NewSMI(run func(ctx context.Context, args ...string) ([]byte, error)) *SMI {
	if run == nil {
		run = execSMI
	}
	return &SMI{run: run}
}

// GPUs lists the GPUs nvidia-smi sees. The CUDA version comes from the plain
// nvidia-smi header and is left empty when that cannot be read.
func (s *SMI) GPUs(ctx context.Context) ([]api.GPU, error) {
	out, err := s.query(ctx, smiInventoryFields)
	if err != nil {
		return nil, err
	}
	gpus, err := ParseSMIInventory(out)
	if err != nil {
		return nil, err
	}
	if len(gpus) > 0 {
		if header, err := s.run(ctx); err == nil {
			if cuda := parseSMICUDA(header); cuda != "" {
				for i := range gpus {
					gpus[i].CUDA = cuda
				}
			}
		}
	}
	return gpus, nil
}

// Telemetry samples every GPU nvidia-smi sees.
func (s *SMI) Telemetry(ctx context.Context) ([]api.GPUTelemetry, error) {
	out, err := s.query(ctx, smiTelemetryFields)
	if err != nil {
		return nil, err
	}
	return ParseSMITelemetry(out)
}

func (s *SMI) query(ctx context.Context, fields string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nvidia-smi: %w", err)
	}
	out, err := s.run(ctx, "--query-gpu="+fields, smiFormat)
	switch {
	case errors.Is(err, ErrNoDriver):
		return nil, err // already says what was tried
	case err != nil:
		return nil, fmt.Errorf("nvidia-smi --query-gpu: %w", err)
	}
	return out, nil
}

// execSMI runs nvidia-smi from PATH and returns its standard output.
func execSMI(ctx context.Context, args ...string) ([]byte, error) {
	path, err := exec.LookPath(smiCommand)
	if err != nil {
		return nil, &noDriverError{reason: smiCommand + " not on PATH"}
	}
	ctx, cancel := context.WithTimeout(ctx, smiTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		return out, nil
	}
	detail := firstLine(stderr.Bytes())
	if detail == "" {
		detail = firstLine(out) // it reports a missing driver on stdout
	}
	// nvidia-smi documents exit status 9 as "NVIDIA driver is not loaded"
	// and 12 as "NVML shared library couldn't be found or loaded".
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && (ee.ExitCode() == 9 || ee.ExitCode() == 12) {
		return nil, &noDriverError{reason: fmt.Sprintf("%s exit status %d: %s", smiCommand, ee.ExitCode(), detail)}
	}
	if detail != "" {
		return nil, fmt.Errorf("%w: %s", err, detail)
	}
	return nil, err
}

func firstLine(b []byte) string {
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}

// ParseSMIInventory parses the output of
//
//	nvidia-smi --query-gpu=index,uuid,name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader,nounits
//
// Values nvidia-smi cannot give ("[N/A]", "[Not Supported]") become zero or
// empty, blank and "WARNING" lines are skipped, and a unit after a number is
// ignored. A line it cannot make sense of, a missing UUID or a repeated one
// is an error.
func ParseSMIInventory(out []byte) ([]api.GPU, error) {
	var gpus []api.GPU
	seenUUID, seenIndex := map[string]bool{}, map[int]bool{}
	for n, line := range smiRecords(out) {
		f := splitCSV(line)
		if len(f) < 7 {
			return nil, fmt.Errorf("nvidia-smi inventory line %d: want 7 comma-separated fields, got %d", n, len(f))
		}
		// GPU names have no commas today; should one, it lies between the
		// UUID and the last four columns.
		tail := f[len(f)-4:]
		g := api.GPU{UUID: f[1], Name: strings.Join(f[2:len(f)-4], ", ")}
		index, err := smiInt(f[0])
		if err != nil || unavailable(f[0]) || index > math.MaxInt32 {
			return nil, fmt.Errorf("nvidia-smi inventory line %d: bad index %q", n, f[0])
		}
		g.Index = int(index)
		if unavailable(g.UUID) {
			return nil, fmt.Errorf("nvidia-smi inventory line %d: no UUID", n)
		}
		if seenUUID[g.UUID] || seenIndex[g.Index] {
			return nil, fmt.Errorf("nvidia-smi inventory line %d: GPU %d %s listed twice", n, g.Index, g.UUID)
		}
		seenUUID[g.UUID], seenIndex[g.Index] = true, true
		if unavailable(g.Name) {
			g.Name = ""
		}
		if g.MemoryMiB, err = smiInt(tail[0]); err != nil {
			return nil, fmt.Errorf("nvidia-smi inventory line %d: memory.total: %w", n, err)
		}
		if !unavailable(tail[1]) {
			g.Driver = tail[1]
		}
		gen, err := smiInt(tail[2])
		if err != nil || gen > 64 {
			return nil, fmt.Errorf("nvidia-smi inventory line %d: bad pcie.link.gen.current %q", n, tail[2])
		}
		width, err := smiInt(tail[3])
		if err != nil || width > 64 {
			return nil, fmt.Errorf("nvidia-smi inventory line %d: bad pcie.link.width.current %q", n, tail[3])
		}
		g.PCIeGen, g.PCIeWidth = int(gen), int(width)
		g.Model = Model(g.Name, g.MemoryMiB)
		gpus = append(gpus, g)
	}
	return gpus, nil
}

// ParseSMITelemetry parses the output of
//
//	nvidia-smi --query-gpu=uuid,utilization.gpu,temperature.gpu,power.draw,memory.used --format=csv,noheader,nounits
//
// with the same tolerance as ParseSMIInventory.
func ParseSMITelemetry(out []byte) ([]api.GPUTelemetry, error) {
	var tel []api.GPUTelemetry
	seen := map[string]bool{}
	for n, line := range smiRecords(out) {
		f := splitCSV(line)
		if len(f) != 5 {
			return nil, fmt.Errorf("nvidia-smi telemetry line %d: want 5 comma-separated fields, got %d", n, len(f))
		}
		t := api.GPUTelemetry{UUID: f[0]}
		if unavailable(t.UUID) {
			return nil, fmt.Errorf("nvidia-smi telemetry line %d: no UUID", n)
		}
		if seen[t.UUID] {
			return nil, fmt.Errorf("nvidia-smi telemetry line %d: GPU %s listed twice", n, t.UUID)
		}
		seen[t.UUID] = true
		var err error
		if t.UtilPercent, err = smiFloat(f[1]); err != nil || t.UtilPercent > 100 {
			return nil, fmt.Errorf("nvidia-smi telemetry line %d: bad utilization.gpu %q", n, f[1])
		}
		if t.TempC, err = smiFloat(f[2]); err != nil {
			return nil, fmt.Errorf("nvidia-smi telemetry line %d: temperature.gpu: %w", n, err)
		}
		if t.PowerW, err = smiFloat(f[3]); err != nil {
			return nil, fmt.Errorf("nvidia-smi telemetry line %d: power.draw: %w", n, err)
		}
		if t.MemUsedMiB, err = smiInt(f[4]); err != nil {
			return nil, fmt.Errorf("nvidia-smi telemetry line %d: memory.used: %w", n, err)
		}
		tel = append(tel, t)
	}
	return tel, nil
}

// smiRecords yields the data lines of nvidia-smi CSV output, numbered from 1
// as an editor would.
func smiRecords(out []byte) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		n := 0
		for line := range strings.Lines(string(out)) {
			n++
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "WARNING") {
				continue
			}
			if !yield(n, line) {
				return
			}
		}
	}
}

func splitCSV(line string) []string {
	f := strings.Split(line, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

// unavailable reports whether nvidia-smi printed a placeholder, not a value:
// "[N/A]", "[Not Supported]", "[Unknown Error]", "[GPU is lost]" and so on.
func unavailable(v string) bool {
	return v == "" || v == "N/A" || strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]")
}

// smiNumber strips a unit nvidia-smi may print after a number ("81559 MiB").
func smiNumber(v string) string {
	if f := strings.Fields(v); len(f) > 0 {
		return f[0]
	}
	return v
}

// smiInt parses a non-negative integer; a placeholder is 0.
func smiInt(v string) (int64, error) {
	if unavailable(v) {
		return 0, nil
	}
	n, err := strconv.ParseInt(smiNumber(v), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad value %q", v)
	}
	return n, nil
}

// smiFloat parses a finite, non-negative number; a placeholder is 0.
func smiFloat(v string) (float64, error) {
	if unavailable(v) {
		return 0, nil
	}
	x, err := strconv.ParseFloat(smiNumber(v), 64)
	if err != nil || x < 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, fmt.Errorf("bad value %q", v)
	}
	return x, nil
}

// parseSMICUDA finds "CUDA Version: 12.4" in the plain nvidia-smi header.
func parseSMICUDA(out []byte) string {
	const key = "CUDA Version:"
	s := string(out)
	i := strings.Index(s, key)
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+len(key):])
	if len(f) == 0 {
		return ""
	}
	v := strings.TrimRight(f[0], "|")
	if v == "" || strings.Trim(v, "0123456789.") != "" || v[0] == '.' {
		return ""
	}
	return v
}
