package executor

import (
	"context"
	"fmt"
	"os/exec"
	"path"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// containerDefaultPath is the PATH the engine gives a container whose image
// sets none.
const containerDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ensureImage makes sure image is present, pulling it if need be, and returns
// its configuration.
func (d *Docker) ensureImage(ctx context.Context, image string) (ocispec.ImageConfig, error) {
	info, err := d.cli.ImageInspect(ctx, image)
	if cerrdefs.IsNotFound(err) {
		resp, perr := d.cli.ImagePull(ctx, image, client.ImagePullOptions{})
		if perr == nil {
			perr = resp.Wait(ctx)
			_ = resp.Close()
		}
		if perr != nil {
			return ocispec.ImageConfig{}, &ImageError{Image: image, Err: perr}
		}
		info, err = d.cli.ImageInspect(ctx, image)
	}
	if err != nil {
		return ocispec.ImageConfig{}, fmt.Errorf("inspect image %q: %w", image, err)
	}
	if info.Config == nil {
		return ocispec.ImageConfig{}, nil
	}
	return info.Config.ImageConfig, nil
}

// checkCommand looks in the created (not yet started) container for the
// binary that will run, so that a missing one is a SpecError from Start, as
// with Process, rather than exit code 127 from the init that runs it. An
// image with an ENTRYPOINT takes the command as arguments and is not checked;
// nor is anything the engine cannot tell us about.
func (d *Docker) checkCommand(ctx context.Context, id string, s Spec, img ocispec.ImageConfig) error {
	if len(img.Entrypoint) > 0 {
		return nil
	}
	argv := s.Command
	if len(argv) == 0 {
		argv = img.Cmd
	}
	if len(argv) == 0 || argv[0] == "" {
		return &SpecError{Field: "Command", Problem: fmt.Sprintf("is empty and image %q names no command", s.Image)}
	}
	name := argv[0]
	var candidates []string
	switch {
	case path.IsAbs(name):
		candidates = []string{name}
	case strings.Contains(name, "/"):
		dir := img.WorkingDir
		if dir == "" {
			dir = "/"
		}
		candidates = []string{path.Join(dir, name)}
	default:
		p := envValue(img.Env, "PATH")
		if p == "" {
			p = containerDefaultPath
		}
		if sp := envValue(s.Env, "PATH"); sp != "" {
			p = sp
		}
		for _, dir := range strings.Split(p, ":") {
			if path.IsAbs(dir) {
				candidates = append(candidates, path.Join(dir, name))
			}
		}
	}
	for _, c := range candidates {
		_, err := d.cli.ContainerStatPath(ctx, id, client.ContainerStatPathOptions{Path: c})
		if err == nil {
			return nil
		}
		if !cerrdefs.IsNotFound(err) {
			return nil // not ours to judge: let the engine try
		}
	}
	return &SpecError{
		Field:   "Command",
		Problem: fmt.Sprintf("names %q, which is not in image %q", name, s.Image),
		Err:     exec.ErrNotFound,
	}
}
