//go:build integration

package mesh_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/iognet/iog/internal/overlay"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/internal/mesh"
	"github.com/iognet/iog/internal/mesh/meshtest"
	"github.com/iognet/iog/internal/netlab"
)

// lab2 makes two namespaces joined by a veth (10.98.0.1 and 10.98.0.2).
func lab2(tb testing.TB) (*netlab.Lab, string, string) {
	tb.Helper()
	if err := netlab.Available(); err != nil {
		tb.Skip(err)
	}
	if err := mesh.KernelAvailable(); err != nil {
		tb.Skip(err)
	}
	lab := netlab.New()
	tb.Cleanup(func() {
		if err := lab.Close(); err != nil {
			tb.Error(err)
		}
	})
	a, err := lab.NS("a")
	if err != nil {
		tb.Fatal(err)
	}
	b, err := lab.NS("b")
	if err != nil {
		tb.Fatal(err)
	}
	if err := lab.Link(a, "ab", "10.98.0.1/24", b, "ba", "10.98.0.2/24"); err != nil {
		tb.Fatal(err)
	}
	return lab, a, b
}

// The kernel plane passes the conformance checks inside a namespace of its own, and its
// interface, address and route go when it closes.
func TestKernelConformance(t *testing.T) {
	lab, a, _ := lab2(t)
	var name string
	err := netlab.Do(a, func() error {
		name = "iogmt" + lab.Prefix[3:]
		k := meshtest.Member(t, mesh.Kernel{}, name, 1)
		s := meshtest.Member(t, mesh.Netstack{}, "", 2)
		meshtest.Pair(t, k, s)
		meshtest.Echo(t, k, s)
		meshtest.Echo(t, s, k)
		if out, _ := lab.Output(a, "ip", "route", "show"); !strings.Contains(out, meshtest.Network.String()) {
			return fmt.Errorf("no route to the overlay:\n%s", out)
		}
		if err := k.Close(); err != nil {
			return err
		}
		out, _ := lab.Output(a, "ip", "-o", "link", "show")
		if strings.Contains(out, name) {
			return fmt.Errorf("interface left after close:\n%s", out)
		}
		if out, _ := lab.Output(a, "ip", "route", "show"); strings.Contains(out, meshtest.Network.String()) {
			return fmt.Errorf("route left after close:\n%s", out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pair opens kernel-plane members in namespaces a (10.98.0.1) and b (10.98.0.2), peered over
// the veth.
func pair(tb testing.TB, lab *netlab.Lab, a, b string, padding bool) (*mesh.Net, *mesh.Net) {
	tb.Helper()
	open := func(ns, name string, slot int) *mesh.Net {
		var n *mesh.Net
		err := netlab.Do(ns, func() error {
			k, err := mesh.NewKey()
			if err != nil {
				return err
			}
			n, err = mesh.Open(mesh.Config{Plane: mesh.Kernel{}, Name: name, Address: netip.PrefixFrom(overlay.Host(meshtest.Network, slot), 24),
				PrivateKey: k, Padding: padding})
			return err
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { n.Close() })
		return n
	}
	na, nb := open(a, lab.Prefix+"m", 1), open(b, lab.Prefix+"m", 2)
	peer := func(n *mesh.Net, ip string) mesh.Peer {
		return mesh.Peer{Name: ip, PublicKey: n.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(n.Address(), 32)},
			Endpoints: []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr(ip), n.Port())}}
	}
	if err := na.SetPeers([]mesh.Peer{peer(nb, "10.98.0.2")}); err != nil {
		tb.Fatal(err)
	}
	if err := nb.SetPeers([]mesh.Peer{peer(na, "10.98.0.1")}); err != nil {
		tb.Fatal(err)
	}
	return na, nb
}

// waitUp waits until a TCP connect from namespace ns to m's mesh IP gets an answer (a refusal
// will do), i.e. the handshake is done.
func waitUp(tb testing.TB, ns string, m *mesh.Net) {
	tb.Helper()
	poll := time.Now().Add(20 * time.Second)
	for {
		if _, err := netlab.Dialer(ns)(context.Background(), "tcp", net.JoinHostPort(m.Address().String(), "9")); err == nil || !strings.Contains(err.Error(), "timeout") {
			return
		}
		if time.Now().After(poll) {
			tb.Fatal("overlay never came up")
		}
	}
}

// The kernel plane's bulk TCP rides on the offloads: the sending TUN hands wireguard-go TSO
// segments larger than the MTU, the WireGuard socket sends UDP GSO super-packets over the veth,
// and the receiving TUN is written GRO-coalesced packets. Each shows as an average packet size
// above the MTU in the interfaces' counters. (Without them the overlay still works, at a
// fraction of the throughput, so nothing else would notice.)
func TestKernelOffloads(t *testing.T) {
	lab, a, b := lab2(t)
	na, nb := pair(t, lab, a, b, false)
	waitUp(t, a, nb)
	if bs := na.Link().TUN().BatchSize(); bs <= 1 {
		t.Fatalf("TUN batch size %d: no virtio-net header, so no TSO/GRO", bs)
	}
	tun := lab.Prefix + "m"
	type ctr struct{ ns, dev, dir string }
	ctrs := []ctr{
		{a, tun, "tx"},             // kernel to wireguard-go: TSO
		{a, lab.Iface("ab"), "tx"}, // WireGuard socket: UDP GSO
		{b, tun, "rx"},             // wireguard-go to kernel: GRO on writes
	}
	read := func() (pk, by []int64) {
		for _, c := range ctrs {
			out, err := lab.Output(c.ns, "cat", "/sys/class/net/"+c.dev+"/statistics/"+c.dir+"_packets",
				"/sys/class/net/"+c.dev+"/statistics/"+c.dir+"_bytes")
			var p, n int64
			if _, serr := fmt.Sscan(out, &p, &n); err != nil || serr != nil {
				t.Fatalf("counters of %s: %v %v: %s", c.dev, err, serr, out)
			}
			pk, by = append(pk, p), append(by, n)
		}
		return pk, by
	}
	p0, b0 := read()
	gbps, _ := measure(t, a, b, nb.Address().String(), time.Second)
	p1, b1 := read()
	for i, c := range ctrs {
		dp, db := p1[i]-p0[i], b1[i]-b0[i]
		if dp == 0 {
			t.Fatalf("%s %s: no packets", c.dev, c.dir)
		}
		t.Logf("%s %s: %d packets, %d bytes each on average", c.dev, c.dir, dp, db/dp)
		if db/dp <= 1500 {
			t.Errorf("%s %s: %d bytes a packet on average: offload not in use", c.dev, c.dir, db/dp)
		}
	}
	t.Logf("%.2f Gbit/s", gbps)
}

// measure sends TCP for d from namespace a to addr (served in namespace b) and returns Gbit/s,
// then the median round trip of 1-byte ping-pongs.
func measure(tb testing.TB, a, b, host string, d time.Duration) (gbps float64, rtt time.Duration) {
	tb.Helper()
	var ln net.Listener
	if err := netlab.Do(b, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var first [1]byte
				if _, err := io.ReadFull(c, first[:]); err != nil {
					return
				}
				if first[0] == 'p' { // ping-pong
					_, _ = c.Write(first[:])
					_, _ = io.Copy(c, c)
					return
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	dial := netlab.Dialer(a)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Throughput: one stream, like iperf3's default.
	c, err := dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	buf[0] = 's'
	var sent int64
	start := time.Now()
	for time.Since(start) < d {
		n, err := c.Write(buf)
		sent += int64(n)
		if err != nil {
			tb.Fatal(err)
		}
	}
	el := time.Since(start)
	c.Close()
	gbps = float64(sent*8) / el.Seconds() / 1e9
	// Latency: 200 ping-pongs on one connection.
	c, err = dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	one := []byte{'p'}
	var rtts []time.Duration
	for i := 0; i < 201; i++ {
		t0 := time.Now()
		if _, err := c.Write(one); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(c, one); err != nil {
			tb.Fatal(err)
		}
		if i > 0 {
			rtts = append(rtts, time.Since(t0))
		}
	}
	for i := range rtts { // insertion sort: 200 values
		for j := i; j > 0 && rtts[j] < rtts[j-1]; j-- {
			rtts[j], rtts[j-1] = rtts[j-1], rtts[j]
		}
	}
	return gbps, rtts[len(rtts)/2]
}

// BenchmarkMeshTCP measures one TCP stream and the round trip over the raw veth and over the
// overlay (wireguard-go on kernel TUNs with offloads) between two namespaces, in the same run,
// and prints their ratio; the last line is JSON. IOG_BENCH_SECONDS sets each stream's length
// (default 5); IOG_BENCH_PADDING=1 pads the overlay's packets.
func BenchmarkMeshTCP(b *testing.B) {
	lab, na, nb := lab2(b)
	padding := os.Getenv("IOG_BENCH_PADDING") == "1"
	ma, mb := pair(b, lab, na, nb, padding)
	_ = ma
	d := 5 * time.Second
	if s := os.Getenv("IOG_BENCH_SECONDS"); s != "" {
		if v, err := time.ParseDuration(s + "s"); err == nil {
			d = v
		}
	}
	// Let the handshake finish before timing.
	waitUp(b, na, mb)
	for i := 0; i < b.N; i++ {
		raw, rawRTT := measure(b, na, nb, "10.98.0.2", d)
		over, overRTT := measure(b, na, nb, mb.Address().String(), d)
		tool := "go"
		if _, err := exec.LookPath("iperf3"); err == nil && os.Getenv("IOG_BENCH_GO") == "" {
			// iperf3 in its own processes keeps the traffic generator off this process's two
			// cores' Go scheduler, as in the measurements of docs/DEPENDENCIES.md.
			raw, over, tool = iperf(b, lab, na, nb, "10.98.0.2", d), iperf(b, lab, na, nb, mb.Address().String(), d), "iperf3"
		}
		b.ReportMetric(raw, "raw-Gbit/s")
		b.ReportMetric(over, "mesh-Gbit/s")
		b.ReportMetric(over/raw, "ratio")
		res := map[string]any{"raw_gbps": round(raw), "mesh_gbps": round(over), "ratio": round(over / raw),
			"raw_rtt_us": rawRTT.Microseconds(), "mesh_rtt_us": overRTT.Microseconds(), "padding": padding, "seconds": d.Seconds(), "tool": tool}
		line, _ := json.Marshal(res)
		fmt.Printf("raw veth %.2f Gbit/s, rtt %v; mesh %.2f Gbit/s, rtt %v; ratio %.2f\n%s\n", raw, rawRTT, over, overRTT, over/raw, line)
	}
}

// iperf runs one iperf3 TCP stream from namespace a to host in namespace b; Gbit/s received.
func iperf(tb testing.TB, lab *netlab.Lab, a, b, host string, d time.Duration) float64 {
	tb.Helper()
	srv := lab.Command(context.Background(), b, "iperf3", "-s", "-B", host, "-p", "5201")
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := lab.Output(a, "iperf3", "-c", host, "-p", "5201", "-t", fmt.Sprint(int(d.Seconds())), "-J")
		var r struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err == nil && json.Unmarshal([]byte(out), &r) == nil && r.End.SumReceived.BitsPerSecond > 0 {
			return r.End.SumReceived.BitsPerSecond / 1e9
		}
		if time.Now().After(deadline) {
			tb.Fatalf("iperf3: %v: %s", err, out)
		}
		time.Sleep(100 * time.Millisecond) // the server may not be listening yet
	}
}

func round(f float64) float64 { return float64(int(f*1000+0.5)) / 1000 }
