package cuda

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/iognet/iog/internal/proof"
)

const library = "libcuda.so.1"

// driver holds the CUDA driver API functions this package calls.
type driver struct {
	init              func(flags uint32) int32
	deviceGetCount    func(n *int32) int32
	deviceGet         func(dev *int32, ordinal int32) int32
	deviceGetUUID     func(uuid *[16]byte, dev int32) int32
	primaryCtxRetain  func(ctx *uintptr, dev int32) int32
	primaryCtxRelease func(dev int32) int32
	ctxSetCurrent     func(ctx uintptr) int32
	ctxSynchronize    func() int32
	moduleLoadData    func(mod *uintptr, image *byte) int32
	moduleGetFunction func(fn *uintptr, mod uintptr, name *byte) int32
	memAlloc          func(dptr *uint64, size uint64) int32
	memFree           func(dptr uint64) int32
	memcpyHtoD        func(dst uint64, src unsafe.Pointer, n uint64) int32
	memcpyDtoH        func(dst unsafe.Pointer, src uint64, n uint64) int32
	memsetD8          func(dst uint64, v uint8, n uint64) int32
	launchKernel      func(fn uintptr, gx, gy, gz, bx, by, bz, shared uint32, stream uintptr, params *unsafe.Pointer, extra *unsafe.Pointer) int32
	getErrorString    func(code int32, s **byte) int32
}

// Solver runs challenge units on the GPUs of this host, one unit per GPU, found by UUID.
type Solver struct {
	d    driver
	gpus map[string]int32 // UUID -> device ordinal
}

// New loads the driver and lists the GPUs. Its error wraps ErrNoDriver when there is none.
func New() (*Solver, error) {
	lib, err := purego.Dlopen(library, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("cuda: %w (%s not loadable: %v)", ErrNoDriver, library, err)
	}
	s := &Solver{gpus: map[string]int32{}}
	syms := []struct {
		fptr any
		name string
	}{
		{&s.d.init, "cuInit"}, {&s.d.deviceGetCount, "cuDeviceGetCount"}, {&s.d.deviceGet, "cuDeviceGet"},
		{&s.d.deviceGetUUID, "cuDeviceGetUuid"}, {&s.d.primaryCtxRetain, "cuDevicePrimaryCtxRetain"},
		{&s.d.primaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"}, {&s.d.ctxSetCurrent, "cuCtxSetCurrent"},
		{&s.d.ctxSynchronize, "cuCtxSynchronize"}, {&s.d.moduleLoadData, "cuModuleLoadData"},
		{&s.d.moduleGetFunction, "cuModuleGetFunction"}, {&s.d.memAlloc, "cuMemAlloc_v2"}, {&s.d.memFree, "cuMemFree_v2"},
		{&s.d.memcpyHtoD, "cuMemcpyHtoD_v2"}, {&s.d.memcpyDtoH, "cuMemcpyDtoH_v2"}, {&s.d.memsetD8, "cuMemsetD8_v2"},
		{&s.d.launchKernel, "cuLaunchKernel"}, {&s.d.getErrorString, "cuGetErrorString"},
	}
	for _, sym := range syms {
		addr, err := purego.Dlsym(lib, sym.name)
		if err != nil {
			return nil, fmt.Errorf("cuda: %w (%s lacks %s: %v)", ErrNoDriver, library, sym.name, err)
		}
		purego.RegisterFunc(sym.fptr, addr)
	}
	if err := s.check("cuInit", s.d.init(0)); err != nil {
		return nil, fmt.Errorf("cuda: %w (%v)", ErrNoDriver, err)
	}
	var n int32
	if err := s.check("cuDeviceGetCount", s.d.deviceGetCount(&n)); err != nil {
		return nil, err
	}
	for i := range n {
		var dev int32
		if err := s.check("cuDeviceGet", s.d.deviceGet(&dev, i)); err != nil {
			return nil, err
		}
		var u [16]byte
		if err := s.check("cuDeviceGetUuid", s.d.deviceGetUUID(&u, dev)); err != nil {
			return nil, err
		}
		s.gpus[formatUUID(u)] = dev
	}
	return s, nil
}

// formatUUID is the form nvidia-smi and NVML print: GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func formatUUID(u [16]byte) string {
	h := fmt.Sprintf("%x", u[:])
	return "GPU-" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// GPUs lists the UUIDs the driver reports.
func (s *Solver) GPUs() []string {
	out := make([]string, 0, len(s.gpus))
	for u := range s.gpus {
		out = append(out, u)
	}
	return out
}

func (s *Solver) check(call string, code int32) error {
	if code == 0 {
		return nil
	}
	msg := "unknown"
	var p *byte
	if s.d.getErrorString != nil && s.d.getErrorString(code, &p) == 0 && p != nil {
		var b strings.Builder
		for q := unsafe.Pointer(p); *(*byte)(q) != 0 && b.Len() < 256; q = unsafe.Add(q, 1) {
			b.WriteByte(*(*byte)(q))
		}
		msg = b.String()
	}
	return &cuError{call: call, code: code, msg: msg}
}

var kernels = []string{"fill", "walk", "band", "bandfin", "gen", "matmul", "rowdigest"}

// Prepare reserves the unit's memory on the GPU whose UUID is unit, and loads the kernels.
func (s *Solver) Prepare(ctx context.Context, p proof.Params, unit string) (proof.Prepared, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	dev, ok := s.gpus[unit]
	if !ok {
		return nil, fmt.Errorf("cuda: no GPU %s on this host (found %d)", unit, len(s.gpus))
	}
	r := &run{s: s, p: p, dev: dev, fns: map[string]uintptr{}}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := s.check("cuDevicePrimaryCtxRetain", s.d.primaryCtxRetain(&r.ctx, dev)); err != nil {
		return nil, err
	}
	if err := r.setup(); err != nil {
		r.release()
		return nil, err
	}
	return r, nil
}

type run struct {
	s   *Solver
	p   proof.Params
	dev int32
	ctx uintptr
	fns map[string]uintptr
	// device buffers
	mem, walks, sums, a, b, c, rows uint64
}

func (r *run) setup() error {
	s, p := r.s, r.p
	if err := s.check("cuCtxSetCurrent", s.d.ctxSetCurrent(r.ctx)); err != nil {
		return err
	}
	src := append([]byte(ptx), 0)
	var mod uintptr
	if err := s.check("cuModuleLoadData", s.d.moduleLoadData(&mod, &src[0])); err != nil {
		return err
	}
	for _, k := range kernels {
		name := append([]byte(k), 0)
		var fn uintptr
		if err := s.check("cuModuleGetFunction "+k, s.d.moduleGetFunction(&fn, mod, &name[0])); err != nil {
			return err
		}
		r.fns[k] = fn
	}
	for _, b := range []struct {
		ptr  *uint64
		size uint64
	}{
		{&r.mem, uint64(p.MemoryBytes)}, {&r.walks, 8 * uint64(p.Checkpoints())}, {&r.sums, 8 * uint64(p.Groups)},
		{&r.a, uint64(p.MatN) * uint64(p.MatK)}, {&r.b, uint64(p.MatK) * uint64(p.MatM)},
		{&r.c, 4 * uint64(p.MatN) * uint64(p.MatM)}, {&r.rows, 8 * uint64(p.MatN)},
	} {
		if err := s.check(fmt.Sprintf("cuMemAlloc(%d bytes)", b.size), s.d.memAlloc(b.ptr, b.size)); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) release() {
	for _, b := range []*uint64{&r.mem, &r.walks, &r.sums, &r.a, &r.b, &r.c, &r.rows} {
		if *b != 0 {
			r.s.d.memFree(*b)
			*b = 0
		}
	}
	if r.ctx != 0 {
		r.s.d.primaryCtxRelease(r.dev)
		r.ctx = 0
	}
}

func (r *run) Close() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if r.ctx != 0 {
		r.s.d.ctxSetCurrent(r.ctx)
	}
	r.release()
	return nil
}

// launch runs kernel name on a grid of gx x gy blocks of bx threads with the given arguments
// (each a pointer to a uint64 or uint32 value).
func (r *run) launch(name string, gx, gy, bx uint32, args ...unsafe.Pointer) error {
	var pin runtime.Pinner
	defer pin.Unpin()
	for _, a := range args {
		pin.Pin(a)
	}
	params := make([]unsafe.Pointer, len(args))
	copy(params, args)
	pin.Pin(&params[0])
	if err := r.s.check("cuLaunchKernel "+name, r.s.d.launchKernel(r.fns[name], gx, max(1, gy), 1, bx, 1, 1, 0, 0, &params[0], nil)); err != nil {
		return err
	}
	return r.s.check("cuCtxSynchronize after "+name, r.s.d.ctxSynchronize())
}

func blocks(n uint64, bx uint32) uint32 { return uint32((n + uint64(bx) - 1) / uint64(bx)) }

func (r *run) download(src uint64, n int) ([]uint64, error) {
	out := make([]uint64, n)
	if n == 0 {
		return out, nil
	}
	err := r.s.check("cuMemcpyDtoH", r.s.d.memcpyDtoH(unsafe.Pointer(&out[0]), src, uint64(8*n)))
	return out, err
}

func (r *run) Solve(ctx context.Context, seed proof.Seed) (proof.Answer, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s, p := r.s, r.p
	if err := s.check("cuCtxSetCurrent", s.d.ctxSetCurrent(r.ctx)); err != nil {
		return proof.Answer{}, err
	}
	w := func(i int) uint64 { return binary.LittleEndian.Uint64(seed[8*i:]) }
	const bx = 256
	mem, lanes, laneWords, seed0 := r.mem, uint64(p.Lanes()), uint64(p.LaneWords), w(0)
	if err := r.launch("fill", blocks(lanes, bx), 1, bx, unsafe.Pointer(&mem), unsafe.Pointer(&lanes), unsafe.Pointer(&laneWords), unsafe.Pointer(&seed0)); err != nil {
		return proof.Answer{}, err
	}
	if err := ctx.Err(); err != nil {
		return proof.Answer{}, err
	}
	nwords, walks, steps, cp, seed1, walkers := uint64(p.Words()), r.walks, uint32(p.Steps), uint32(p.Checkpoint), w(1), uint32(p.Walkers)
	if err := r.launch("walk", blocks(uint64(walkers), bx), 1, bx, unsafe.Pointer(&mem), unsafe.Pointer(&nwords), unsafe.Pointer(&walks),
		unsafe.Pointer(&steps), unsafe.Pointer(&cp), unsafe.Pointer(&seed1), unsafe.Pointer(&walkers)); err != nil {
		return proof.Answer{}, err
	}
	var ans proof.Answer
	var err error
	if ans.Walks, err = r.download(r.walks, p.Checkpoints()); err != nil {
		return ans, err
	}
	key := proof.BandKey(seed, ans.Walks)
	per, sums, groups := uint64(p.Words()/int64(p.Groups)), r.sums, uint32(p.Groups)
	if err := s.check("cuMemsetD8", s.d.memsetD8(r.sums, 0, 8*uint64(p.Groups))); err != nil {
		return ans, err
	}
	if err := r.launch("band", groups, 1, bx, unsafe.Pointer(&mem), unsafe.Pointer(&per), unsafe.Pointer(&key), unsafe.Pointer(&sums)); err != nil {
		return ans, err
	}
	if err := r.launch("bandfin", blocks(uint64(groups), bx), 1, bx, unsafe.Pointer(&sums), unsafe.Pointer(&groups)); err != nil {
		return ans, err
	}
	if ans.Groups, err = r.download(r.sums, p.Groups); err != nil {
		return ans, err
	}
	if err := ctx.Err(); err != nil {
		return ans, err
	}
	ka, kb := proof.MatKeys(seed)
	a, b, c, rows := r.a, r.b, r.c, r.rows
	wa, wb := uint64(p.MatN*p.MatK/8), uint64(p.MatK*p.MatM/8)
	if err := r.launch("gen", blocks(wa, bx), 1, bx, unsafe.Pointer(&a), unsafe.Pointer(&ka), unsafe.Pointer(&wa)); err != nil {
		return ans, err
	}
	if err := r.launch("gen", blocks(wb, bx), 1, bx, unsafe.Pointer(&b), unsafe.Pointer(&kb), unsafe.Pointer(&wb)); err != nil {
		return ans, err
	}
	n, k, m := uint32(p.MatN), uint32(p.MatK), uint32(p.MatM)
	if err := r.launch("matmul", blocks(uint64(m), bx), n, bx, unsafe.Pointer(&a), unsafe.Pointer(&b), unsafe.Pointer(&c),
		unsafe.Pointer(&n), unsafe.Pointer(&k), unsafe.Pointer(&m)); err != nil {
		return ans, err
	}
	seed3 := w(3)
	if err := r.launch("rowdigest", blocks(uint64(n), bx), 1, bx, unsafe.Pointer(&c), unsafe.Pointer(&n), unsafe.Pointer(&m),
		unsafe.Pointer(&seed3), unsafe.Pointer(&rows)); err != nil {
		return ans, err
	}
	ans.Rows, err = r.download(r.rows, p.MatN)
	return ans, err
}
