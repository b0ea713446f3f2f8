package task

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/iognet/iog/api"
)

// Request is the cluster a task file asks for: what `iog cluster create` would send with the
// same flags. The fields the coordinator cannot honour yet are refused here by name, rather
// than dropped: a renter who asks for 8 CPUs must not get a node without them unknowingly.
func (f File) Request() (api.CreateClusterRequest, error) {
	r := api.CreateClusterRequest{
		Name:       f.Name,
		Type:       f.Type,
		Nodes:      f.Nodes,
		Region:     f.Resources.Region,
		Hours:      f.Hours,
		MaxPrice:   f.Resources.MaxPrice,
		Image:      f.Image,
		Currency:   f.Currency,
		Commitment: f.Commit,
		Tier:       f.Resources.Tier,
		Isolation:  f.Isolation,
		Outputs:    f.Outputs,
		Tasks:      f.Tasks,
		Retries:    f.Retries,
	}
	models, perNode, err := f.Resources.Models()
	if err != nil {
		return r, err
	}
	switch {
	case len(models) > 1:
		return r, invalid("resources.gpu", "%q: more than one GPU model is not supported by the coordinator yet; pick one", f.Resources.GPU)
	case len(models) == 1:
		r.GPUModel = models[0]
	}
	r.GPUsPerNode = perNode
	// cpus and memory are the least a node's device has (placement), as in SkyPilot.
	r.CPUs = f.Resources.CPUs
	if f.Resources.Memory != "" {
		var err error
		if r.MemoryMiB, err = MemoryMiB(f.Resources.Memory); err != nil {
			return r, invalid("resources.memory", "%v", err)
		}
	}
	if len(f.Env) > 0 {
		r.Env = maps.Clone(f.Env)
	}
	if len(f.Secrets) > 0 {
		r.Secrets = maps.Clone(f.Secrets)
	}
	for _, p := range f.Ports {
		r.Ports = append(r.Ports, api.PortSpec{Port: p.Port, Public: p.Public})
	}
	r.Jupyter = f.Jupyter
	r.Command = f.Command()
	return r, nil
}

// Command is what each node runs: run in sh, after setup (in its own `sh -e`, so that the first
// failing line of setup stops it and the node exits with its code and says so on stderr).
func (f File) Command() []string {
	if f.Run == "" {
		return nil
	}
	if f.Setup == "" {
		return []string{"sh", "-c", f.Run}
	}
	script := "sh -ec " + Quote(f.Setup) +
		` || { rc=$?; echo "iog: setup failed with exit code $rc" >&2; exit $rc; }` + "\n" + f.Run
	return []string{"sh", "-c", script}
}

// FromRequest is the task file of a `cluster create` request: the reverse of Request, for a
// file that a flag-made cluster can be written down as.
func FromRequest(r api.CreateClusterRequest) File {
	f := File{
		Name:      r.Name,
		Type:      r.Type,
		Nodes:     r.Nodes,
		Image:     r.Image,
		Isolation: r.Isolation,
		Hours:     r.Hours,
		Currency:  r.Currency,
		Commit:    r.Commitment,
		Resources: Resources{Region: r.Region, Tier: r.Tier, MaxPrice: r.MaxPrice, CPUs: r.CPUs},
		Outputs:   r.Outputs,
		Tasks:     r.Tasks,
		Retries:   r.Retries,
	}
	if r.MemoryMiB > 0 {
		f.Resources.Memory = strconv.FormatInt(r.MemoryMiB, 10) + "MiB"
	}
	if len(r.Env) > 0 {
		f.Env = maps.Clone(r.Env)
	}
	if len(r.Secrets) > 0 {
		f.Secrets = maps.Clone(r.Secrets)
	}
	for _, p := range r.Ports {
		f.Ports = append(f.Ports, Port{Port: p.Port, Public: p.Public})
	}
	f.Jupyter = r.Jupyter
	if r.GPUModel != "" {
		f.Resources.GPU = r.GPUModel
		if r.GPUsPerNode > 0 {
			f.Resources.GPU += fmt.Sprintf(":%d", r.GPUsPerNode)
		}
	} else if r.GPUsPerNode > 0 {
		f.Resources.GPU = fmt.Sprintf("any:%d", r.GPUsPerNode)
	}
	switch {
	case len(r.Command) == 3 && r.Command[0] == "sh" && r.Command[1] == "-c":
		f.Run = r.Command[2]
	case len(r.Command) > 0:
		q := make([]string, len(r.Command))
		for i, a := range r.Command {
			q[i] = Quote(a)
		}
		f.Run = strings.Join(q, " ")
	}
	return f
}

// Quote quotes s for a POSIX shell, leaving plain words as they are.
func Quote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// MaxMemoryMiB is the most memory a node may ask its device to have (16 TiB).
const MaxMemoryMiB = 16 << 20

// MemoryMiB reads a node's least memory (`resources.memory`, `--memory`), like 64GiB, in MiB
// rounded up.
func MemoryMiB(s string) (int64, error) {
	b, err := ParseSize(s)
	if err != nil {
		return 0, err
	}
	mib := (b + 1<<20 - 1) >> 20
	if mib > MaxMemoryMiB {
		return 0, fmt.Errorf("%q: at most 16 TiB", s)
	}
	return mib, nil
}
