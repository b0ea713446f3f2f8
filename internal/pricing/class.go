package pricing

import (
	"math"
	"strings"

	"github.com/iognet/iog/internal/iog"
)

// Class is a GPU performance class: how much one device of it weighs in rewards and what it asks
// by default.
type Class struct {
	Model string // the normalised model (see hwinfo); "" is the CPU-only row, "unknown" any unlisted GPU
	// Multiplier is the class's weight in per-mille: an H100 is 10000 (10.0), a CPU device 100 (0.1).
	Multiplier int64
	// RefPerHour is the reference ask for one GPU for one hour (one device-hour for CPU) in
	// USDC micro-units.
	RefPerHour iog.Amount
}

// UnknownModel is the Model of the class every unlisted GPU falls into.
const UnknownModel = "unknown"

// classes is the table; the order matters only in that, of rows a family name matches with the
// same multiplier, the first wins.
var classes = [...]Class{
	{"H100-80GB", 10000, 2_000_000},
	{"H100-94GB", 10000, 2_000_000},
	{"H200", 12000, 2_500_000},
	{"B200", 15000, 3_500_000},
	{"GH200", 12000, 2_500_000},
	{"A100-80GB", 5000, 1_200_000},
	{"A100-40GB", 4000, 900_000},
	{"H800-80GB", 9000, 1_800_000},
	{"A800-80GB", 4500, 1_100_000},
	{"A800-40GB", 3600, 800_000},
	{"L40S", 3000, 800_000},
	{"L40", 2500, 700_000},
	{"A40", 2000, 500_000},
	{"A30", 1800, 450_000},
	{"RTX-A6000", 1800, 450_000},
	{"RTX-6000-ADA", 2500, 700_000},
	{"RTX-5000-ADA", 1500, 450_000},
	{"RTX-4000-ADA", 700, 180_000},
	{"RTX-A5000", 1000, 250_000},
	{"RTX-A4500", 800, 200_000},
	{"RTX-A4000", 600, 150_000},
	{"RTX-5090", 2000, 550_000},
	{"RTX-5080", 1100, 300_000},
	{"RTX-4090", 1250, 350_000},
	{"RTX-4080-SUPER", 1000, 270_000},
	{"RTX-4080", 900, 250_000},
	{"RTX-4070-TI", 700, 150_000},
	{"RTX-4070", 550, 120_000},
	{"RTX-4060", 350, 80_000},
	{"RTX-3090-TI", 900, 220_000},
	{"RTX-3090", 800, 200_000},
	{"RTX-3080-TI", 700, 140_000},
	{"RTX-3080", 600, 120_000},
	{"RTX-3070", 450, 90_000},
	{"RTX-3060", 300, 70_000},
	{"A10G", 700, 200_000},
	{"A10", 700, 200_000},
	{"L4", 600, 170_000},
	{"A16", 300, 80_000},
	{"A2", 300, 60_000},
	{"T4", 300, 80_000},
	{"V100-32GB", 1000, 250_000},
	{"V100-16GB", 800, 200_000},
	{UnknownModel, 250, 50_000}, // below every listed class: an unlisted model must not pay more than a known one
	{"", 100, 20_000},
}

// Classes returns the class table, CPU and unknown rows last.
func Classes() []Class {
	out := make([]Class, len(classes))
	copy(out, classes[:])
	return out
}

// ClassOf returns the class of a normalised model, compared without regard to case: the row of
// that model; else, for a family name, the row it refines with the lowest multiplier ("H100" is
// H100-80GB, "A100" is A100-40GB: a name that does not say which one is charged and rewarded as
// the lesser); else the unknown-GPU row. "" is a CPU-only device.
func ClassOf(model string) Class {
	model = strings.TrimSpace(model)
	if model == "" {
		return classes[len(classes)-1]
	}
	for _, c := range classes {
		if c.Model != "" && strings.EqualFold(c.Model, model) {
			return c
		}
	}
	best := -1
	for i, c := range classes {
		refines := len(c.Model) > len(model) && strings.EqualFold(c.Model[:len(model)], model) && c.Model[len(model)] == '-'
		if refines && (best < 0 || c.Multiplier < classes[best].Multiplier) {
			best = i
		}
	}
	if best >= 0 {
		return classes[best]
	}
	return classes[len(classes)-2]
}

// AutoAsk is the ask per hour of a device that has not set its own, in USDC micro-units: the
// class's RefPerHour x max(gpus, 1) x perfPermille / 1000, rounded to the nearest micro-unit with
// halves up. perfPermille is the device's measured performance against its class (1000 = par);
// 0 or less means unmeasured and counts as 1000. A result too large for an Amount saturates at the
// largest Amount; no real device comes near it.
func AutoAsk(model string, gpus int, perfPermille int64) iog.Amount {
	n := int64(max(gpus, 1))
	if perfPermille <= 0 {
		perfPermille = 1000
	}
	ref, err := ClassOf(model).RefPerHour.Mul(n)
	if err != nil {
		return math.MaxInt64
	}
	v, ok := mulDiv(int64(ref), perfPermille, 1000, halfUp)
	if !ok {
		return math.MaxInt64
	}
	return iog.Amount(v)
}
