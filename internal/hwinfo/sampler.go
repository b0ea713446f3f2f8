package hwinfo

import (
	"context"
	"io"
	"os"
	"sync"
	"time"

	"github.com/iognet/iog/api"
)

// Sampler takes the telemetry a heartbeat carries. CPU utilisation is the
// busy share of /proc/stat time since the previous Sample, so the first
// Sample reports 0; call it once at start to prime it. It is safe for
// concurrent use.
type Sampler struct {
	opt    Options
	gpu    GPUDetector
	closer io.Closer // the detector, when the Sampler made it

	mu       sync.Mutex
	prev     cpuTimes
	havePrev bool
}

// NewSampler returns a Sampler reading opt.Root's /proc and sampling GPUs
// through opt.GPU, or through DefaultGPU() when that is nil.
func NewSampler(opt Options) *Sampler {
	s := &Sampler{opt: opt, gpu: opt.GPU}
	if s.gpu == nil {
		s.gpu = DefaultGPU()
		s.closer, _ = s.gpu.(io.Closer)
	}
	return s
}

// Sample returns the host's load at now. What cannot be read is left zero:
// a heartbeat with partial telemetry is worth more than none, and a GPU
// that fails to answer simply has no entry.
func (s *Sampler) Sample(ctx context.Context, now time.Time) api.Telemetry {
	tel := api.Telemetry{At: now}
	if cur, err := readStat(s.opt.path("proc/stat")); err == nil {
		s.mu.Lock()
		if s.havePrev {
			tel.CPUPercent = cpuPercent(s.prev, cur)
		}
		s.prev, s.havePrev = cur, true
		s.mu.Unlock()
	}
	if b, err := os.ReadFile(s.opt.path("proc/meminfo")); err == nil {
		tel.MemUsedMiB = parseMemInfo(b).usedMiB()
	}
	if gpus, err := s.gpu.Telemetry(ctx); err == nil && len(gpus) > 0 {
		tel.GPUs = gpus
	}
	return tel
}

// Close releases the GPU detector if NewSampler made it; a detector passed
// in Options belongs to the caller.
func (s *Sampler) Close() error {
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}
