package market

import (
	"slices"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// MaxPorts bounds the exposed ports of a cluster.
const MaxPorts = 32

// validPorts checks the exposed ports and adds Jupyter's (with a fresh token) for --jupyter.
func validPorts(s *iog.ClusterSpec, in []api.PortSpec) error {
	if len(in) > MaxPorts {
		return iog.Errorf(iog.EINVALID, "at most %d exposed ports", MaxPorts)
	}
	for _, p := range in {
		if p.Port < 1 || p.Port > 65535 {
			return iog.Errorf(iog.EINVALID, "port %d: want a port from 1 to 65535", p.Port)
		}
		if slices.ContainsFunc(s.Ports, func(q iog.PortSpec) bool { return q.Port == p.Port }) {
			return iog.Errorf(iog.EINVALID, "port %d is given twice", p.Port)
		}
		s.Ports = append(s.Ports, iog.PortSpec{Port: p.Port, Public: p.Public})
	}
	if !s.Jupyter {
		return nil
	}
	i := slices.IndexFunc(s.Ports, func(q iog.PortSpec) bool { return q.Port == iog.JupyterPort })
	switch {
	case i >= 0 && s.Ports[i].Public:
		return iog.Errorf(iog.EINVALID, "port %d is Jupyter's with --jupyter: it cannot be public (anyone could run code on your node)", iog.JupyterPort)
	case i < 0:
		s.Ports = append(s.Ports, iog.PortSpec{Port: iog.JupyterPort})
	}
	s.JupyterToken = iog.NewSecret("", 24)
	return nil
}

func portsToAPI(s iog.ClusterSpec) []api.PortSpec {
	if len(s.Ports) == 0 {
		return nil
	}
	out := make([]api.PortSpec, len(s.Ports))
	for i, p := range s.Ports {
		out[i] = api.PortSpec{Port: p.Port, Public: p.Public}
	}
	return out
}

// jupyterScript starts Jupyter in the background, where the node has it, then runs the node's
// command ("$@"), or waits for Jupyter when there is none.
const jupyterScript = `tok="$IOG_JUPYTER_TOKEN"; unset IOG_JUPYTER_TOKEN
if command -v jupyter >/dev/null 2>&1 && jupyter lab --version >/dev/null 2>&1; then
  echo "iog: starting JupyterLab on 127.0.0.1:8888" >&2
  jupyter lab --no-browser --allow-root --ip 127.0.0.1 --port 8888 --ServerApp.port_retries=0 --ServerApp.base_url=/ --ServerApp.allow_remote_access=True --ServerApp.token="$tok" >>"${TMPDIR:-/tmp}/iog-jupyter-$$.log" 2>&1 &
elif command -v jupyter >/dev/null 2>&1 && jupyter notebook --version >/dev/null 2>&1; then
  echo "iog: starting the Jupyter notebook on 127.0.0.1:8888" >&2
  jupyter notebook --no-browser --allow-root --ip 127.0.0.1 --port 8888 --NotebookApp.port_retries=0 --NotebookApp.base_url=/ --NotebookApp.allow_remote_access=True --NotebookApp.token="$tok" >>"${TMPDIR:-/tmp}/iog-jupyter-$$.log" 2>&1 &
else
  echo "iog: --jupyter: this node has no jupyter (neither jupyter lab nor jupyter notebook); running the command without it" >&2
fi
unset tok
if [ "$#" -gt 0 ]; then "$@"; exit $?; fi
wait`

// withJupyter wraps node 0's command in jupyterScript for a --jupyter cluster.
func withJupyter(c iog.Cluster, rank int, cmd []string) []string {
	if !c.Spec.Jupyter || rank != 0 {
		return cmd
	}
	return append([]string{"sh", "-c", jupyterScript, "iog-jupyter"}, cmd...)
}
