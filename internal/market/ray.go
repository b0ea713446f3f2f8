package market

import (
	"net/netip"
	"strconv"

	"github.com/iognet/iog/internal/iog"
)

// Ray's ports (docs/DEPENDENCIES.md). They are reached over the cluster mesh only: the head binds
// the GCS and the dashboard to its mesh IP, and a supplier's host firewall keeps the rest of
// Ray's sockets (some bind every interface) off the host's other interfaces (docs/MESH.md).
const (
	RayGCSPort       = 6379
	RayDashboardPort = 8265
	RayClientPort    = 10001
	RayAgentPort     = 52365
)

// rayWait is how long a Ray node waits for the head's GCS to answer (image pulls included).
const rayWait = 600 // seconds

// meshDataPlane is the data plane whose mesh a node's workload reaches: the kernel TUN (a
// netstack mesh lives inside the worker process).
const meshDataPlane = "tun"

// reachesMesh reports whether workloads on a device reach mesh IPs, as Ray's nodes must.
func reachesMesh(d iog.Device) bool { return d.DataPlane == meshDataPlane }

// rayCommand is what a node of a ray cluster runs (docs/DESIGN.md §4), given its own and the head's
// mesh IPs. Node 0 runs the head on its mesh IP; with a renter's command it then waits for the
// head to answer and runs the command there as the Ray driver (RAY_ADDRESS set), and the node
// exits with the command's code. Every other node waits for the head and joins it by the head's
// mesh IP. The renter's command reaches sh as positional parameters, never as script text. A
// node without a mesh IP gets a command that fails and says why.
func rayCommand(rank int, meshIP, headIP string, cmd []string) []string {
	ip, err1 := netip.ParseAddr(meshIP)
	head, err2 := netip.ParseAddr(headIP)
	if err1 != nil || err2 != nil {
		return []string{"sh", "-c", `echo "iog: this Ray node has no cluster mesh address (the coordinator's mesh is off, or this device's worker has no kernel TUN data plane); Ray's nodes reach each other only over the mesh" >&2; exit 1`}
	}
	gcs := netip.AddrPortFrom(head, RayGCSPort).String()
	// wait polls the head's GCS each second, as KubeRay's wait-gcs-ready init container does;
	// check runs first in each round, giveUp before it exits.
	wait := func(check, giveUp string) string {
		return `i=0
until ray health-check --address ` + gcs + ` >/dev/null 2>&1; do
  ` + check + `
  i=$((i+1))
  if [ "$i" -ge ` + strconv.Itoa(rayWait) + ` ]; then echo "iog: the Ray head at ` + gcs + ` did not answer within ` + strconv.Itoa(rayWait) + ` s" >&2; ` + giveUp + `exit 1; fi
  [ "$i" -eq 1 ] && echo "iog: waiting for the Ray head at ` + gcs + `"
  sleep 1
done
`
	}
	if rank > 0 {
		script := wait(":", "") + "exec ray start --address=" + gcs + " --node-ip-address=" + ip.String() + " --block\n"
		return []string{"sh", "-c", script, "iog-ray-worker"}
	}
	start := []string{"ray", "start", "--head", "--node-ip-address=" + ip.String(), "--port=" + strconv.Itoa(RayGCSPort),
		"--dashboard-host=" + ip.String(), "--disable-usage-stats", "--block"}
	if len(cmd) == 0 {
		return start
	}
	script := `job=
trap 'kill -TERM "$ray" $job 2>/dev/null' TERM INT
`
	for _, a := range start {
		script += a + " "
	}
	script += `&
ray=$!
` + wait(`if ! kill -0 "$ray" 2>/dev/null; then wait "$ray"; echo "iog: ray start --head exited with code $?" >&2; exit 1; fi`,
		`kill -TERM "$ray"; wait "$ray"; `) +
		`export RAY_ADDRESS=` + gcs + `
"$@" &
job=$!
code=0
wait "$job" || code=$?
while kill -0 "$job" 2>/dev/null; do wait "$job"; code=$?; done
kill -TERM "$ray" 2>/dev/null
wait "$ray"
exit "$code"
`
	return append([]string{"sh", "-c", script, "iog-ray-head"}, cmd...)
}

// nodeCommand is the command a node runs: the renter's, or for a ray cluster the Ray wiring
// around it.
func nodeCommand(c iog.Cluster, rank int, meshIP, headIP string) []string {
	if c.Spec.Type == iog.TypeRay {
		return withJupyter(c, rank, rayCommand(rank, meshIP, headIP, c.Spec.Command))
	}
	return withJupyter(c, rank, c.Spec.Command)
}
