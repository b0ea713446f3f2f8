package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
)

func (a *app) deviceCmd() *cobra.Command {
	return group("device", "Join, inspect and manage your devices",
		a.deviceListCmd(),
		a.deviceGetCmd(),
		a.deviceRenameCmd(),
		a.devicePriceCmd(),
		a.deviceStateCmd("pause", "Take a device off the market until resumed", "paused"),
		a.deviceStateCmd("resume", "Put a paused device back on the market", "resumed"),
		a.deviceDeleteCmd(),
		a.deviceTokenCmd(),
	)
}

func (a *app) deviceListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List your devices",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ds, err := c.Devices(cmd.Context())
			if err != nil {
				return fmt.Errorf("list devices: %w", err)
			}
			if asJSON {
				if ds == nil {
					ds = []api.Device{}
				}
				return printJSON(a.stdout, ds)
			}
			if len(ds) == 0 {
				fmt.Fprintln(a.stdout, `No devices. Join one with "iog device token".`)
				return nil
			}
			now := a.now()
			tw := table(a.stdout)
			row(tw, "ID", "NAME", "STATUS", "GPU", "REGION", "ASK/H", "LAST SEEN")
			for _, d := range ds {
				row(tw, d.ID, orDash(d.Name), deviceStatus(d), gpuSummary(d.GPUCount, d.GPUModel),
					orDash(d.Region), orDash(d.AskPerHour), ago(now, d.LastSeenAt))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// deviceStatus is the status with its reason, which a supplier must always be able to read.
func deviceStatus(d api.Device) string {
	if d.StatusReason == "" {
		return orDash(d.Status)
	}
	return d.Status + " (" + d.StatusReason + ")"
}

func (a *app) deviceGetCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a device: hardware, status with reason, telemetry and history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.Device(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, d)
			}
			a.deviceDetails(a.stdout, d)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) deviceDetails(w io.Writer, d api.Device) {
	now := a.now()
	tw := table(w)
	row(tw, "ID:", d.ID)
	row(tw, "Name:", orDash(d.Name))
	row(tw, "Status:", deviceStatus(d))
	row(tw, "Region:", orDash(d.Region))
	row(tw, "GPU:", gpuSummary(d.GPUCount, d.GPUModel))
	row(tw, "Ask/hour:", orDash(d.AskPerHour))
	row(tw, "Data plane:", orDefault(d.DataPlane, "none"))
	if inv := d.Inventory; inv != nil {
		row(tw, "Isolation:", isolationSummary(inv.Isolation, inv.IsolationNote))
	}
	if d.Addr != "" {
		row(tw, "Address:", d.Addr)
	}
	if d.SharedHost {
		row(tw, "Shared host:", "yes (devnet)")
	}
	if d.LeaseID != "" {
		row(tw, "Lease:", d.LeaseID)
	}
	if d.Review != "" {
		row(tw, "Review:", d.Review)
	}
	last := ago(now, d.LastSeenAt)
	if !d.LastSeenAt.IsZero() {
		last = formatTime(d.LastSeenAt) + " (" + last + ")"
	}
	row(tw, "Last seen:", last)
	row(tw, "Joined:", formatTime(d.CreatedAt))
	_ = tw.Flush()

	if inv := d.Inventory; inv != nil {
		fmt.Fprintln(w, "\nHardware:")
		tw = table(w)
		host := inv.Hostname + " (" + inv.OS + "/" + inv.Arch
		if inv.Kernel != "" {
			host += ", kernel " + inv.Kernel
		}
		row(tw, "  Host:", host+")")
		row(tw, "  CPU:", fmt.Sprintf("%s, %d cores / %d threads", orDefault(inv.CPUModel, "unknown"), inv.CPUCores, inv.CPUThreads))
		row(tw, "  Memory:", mib(inv.MemoryMiB))
		row(tw, "  Disk:", mib(inv.DiskMiB))
		if len(inv.GPUs) == 0 {
			row(tw, "  GPUs:", orDefault(inv.GPUNote, "none"))
		}
		for i, g := range inv.GPUs {
			label := ""
			if i == 0 {
				label = "  GPUs:"
			}
			row(tw, label, gpuLine(g))
		}
		if inv.Share != "" {
			row(tw, "  Share:", inv.Share)
		}
		_ = tw.Flush()
	}

	if t := d.Telemetry; t != nil {
		fmt.Fprintf(w, "\nTelemetry (%s):\n", ago(now, t.At))
		tw = table(w)
		row(tw, "  CPU:", fmt.Sprintf("%.0f%%", t.CPUPercent))
		row(tw, "  Memory used:", mib(t.MemUsedMiB))
		for _, g := range t.GPUs {
			row(tw, "  GPU "+g.UUID+":", fmt.Sprintf("%.0f%% util, %.0f°C, %.0f W, %s used", g.UtilPercent, g.TempC, g.PowerW, mib(g.MemUsedMiB)))
		}
		_ = tw.Flush()
	}

	deviceTrust(w, d)

	fmt.Fprintln(w, "\nEvents:")
	if len(d.Events) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	tw = table(w)
	row(tw, "  AT", "STATUS", "REASON")
	for _, e := range d.Events {
		row(tw, "  "+formatTime(e.At), orDash(e.Status), orDash(e.Reason))
	}
	_ = tw.Flush()
}

// gpuLine describes one GPU: "0: NVIDIA H100 80GB HBM3 (H100-80GB, 80 GiB, driver 550.54, CUDA 12.4)".
func gpuLine(g api.GPU) string {
	var facts []string
	for _, s := range []string{g.Model, mib(g.MemoryMiB)} {
		if s != "" && s != "-" {
			facts = append(facts, s)
		}
	}
	if g.Driver != "" {
		facts = append(facts, "driver "+g.Driver)
	}
	if g.CUDA != "" {
		facts = append(facts, "CUDA "+g.CUDA)
	}
	if g.PCIeGen > 0 {
		facts = append(facts, fmt.Sprintf("PCIe %d x%d", g.PCIeGen, g.PCIeWidth))
	}
	s := fmt.Sprintf("%d: %s", g.Index, orDefault(g.Name, "GPU"))
	if len(facts) > 0 {
		s += " (" + strings.Join(facts, ", ") + ")"
	}
	return s
}

func (a *app) deviceRenameCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rename ID NAME",
		Short: "Rename a device",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(args[1]) == "" {
				return usageErrorf("the new name must not be empty")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.RenameDevice(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, d)
			}
			fmt.Fprintf(a.stdout, "device %s renamed to %q\n", d.ID, d.Name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the device as JSON")
	return cmd
}

// deviceStateCmd is pause or resume, which differ only in the call they make.
func (a *app) deviceStateCmd(verb, short, done string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			call := c.PauseDevice
			if verb == "resume" {
				call = c.ResumeDevice
			}
			d, err := call(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, d)
			}
			fmt.Fprintf(a.stdout, "device %s %s; status: %s\n", d.ID, done, deviceStatus(d))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the device as JSON")
	return cmd
}

func (a *app) deviceDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Remove a device that holds no lease, stake or unclaimed rewards",
		Long: `Remove a device: its worker's key stops working. A device that is hired, has stake (staked
or in its 14-day cooldown) or unclaimed block rewards is refused, with what to do first
("iog stake withdraw", "iog wallet claim").`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeleteDevice(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "device %s deleted\n", args[0])
			return nil
		},
	}
}

func (a *app) deviceTokenCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make a one-time token that joins a device, and show the command to run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.CreateJoinToken(cmd.Context())
			if err != nil {
				return fmt.Errorf("make join token: %w", err)
			}
			if asJSON {
				return printJSON(a.stdout, t)
			}
			fmt.Fprintf(a.stdout, "Join token (one use, expires %s):\n  %s\n\n", formatTime(t.ExpiresAt), t.Token)
			fmt.Fprintln(a.stdout, "Run this on the device to join it:")
			fmt.Fprintf(a.stdout, "  iog worker --coordinator %s --join-token %s\n", c.Base, t.Token)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// isolationSummary says how a device confines renters' workloads (docs/SECURITY.md).
func isolationSummary(levels []string, note string) string {
	words := map[string]string{
		"sandbox":   "process sandbox",
		"none":      "processes unsandboxed (dev only)",
		"container": "containers",
		"gvisor":    "containers under gVisor",
	}
	var out []string
	for _, l := range levels {
		out = append(out, orDefault(words[l], l))
	}
	s := orDefault(strings.Join(out, ", "), "not reported")
	if note != "" {
		s += " (" + note + ")"
	}
	return s
}
