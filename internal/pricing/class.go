package pricing

import (
	"math"
	"strings"

	"github.com/iognet/iog/internal/iog"
)

// Class is a GPU performance class: how much one device of it weighs in rewards, what it asks
// by default, and what a GPU of it looks like.
type Class struct {
	Model string // the normalised model (see hwinfo); "" is the CPU-only row, "unknown" any unlisted GPU
	// Multiplier is the class's weight in per-mille: an H100 is 10000 (10.0), a CPU device 100 (0.1).
	Multiplier int64
	// RefPerHour is the reference ask for one GPU for one hour (one device-hour for CPU) in
	// USDC micro-units.
	RefPerHour iog.Amount
	// MinMemMiB and MaxMemMiB bound the memory one GPU of the class reports (every variant
	// sold under the name, with room for what drivers keep back).
	MinMemMiB, MaxMemMiB int64
	// Family is the name a renter may ask for to get any of the memory sizes sold under one
	// name ("H100" for H100-80GB and H100-94GB); "" when the class has none.
	Family string
	// Unlisted marks a model the table does not know (Resolve): it keeps its own name, matches
	// only requests for that name, and is priced and rewarded as the unknown row.
	Unlisted bool
}

// UnknownModel is the Model of the class every unlisted GPU falls into.
const UnknownModel = "unknown"

// MaxUnlistedMemMiB bounds the memory of one GPU of an unlisted model (512 GiB: above any GPU
// sold today).
const MaxUnlistedMemMiB = 512 << 10

// classes is the table; the order matters only in that, of rows a family name matches with the
// same multiplier, the first wins.
var classes = [...]Class{
	{"H100-80GB", 10000, 2_000_000, 76_000, 86_000, "H100", false},
	{"H100-94GB", 10000, 2_000_000, 90_000, 100_000, "H100", false},
	{"H200", 12000, 2_500_000, 135_000, 150_000, "", false},
	{"B200", 15000, 3_500_000, 170_000, 200_000, "", false},
	{"GH200", 12000, 2_500_000, 90_000, 150_000, "", false},
	{"A100-80GB", 5000, 1_200_000, 76_000, 86_000, "A100", false},
	{"A100-40GB", 4000, 900_000, 38_000, 42_000, "A100", false},
	{"H800-80GB", 9000, 1_800_000, 76_000, 86_000, "H800", false},
	{"A800-80GB", 4500, 1_100_000, 76_000, 86_000, "A800", false},
	{"A800-40GB", 3600, 800_000, 38_000, 42_000, "A800", false},
	{"L40S", 3000, 800_000, 44_000, 50_000, "", false},
	{"L40", 2500, 700_000, 44_000, 50_000, "", false},
	{"A40", 2000, 500_000, 44_000, 50_000, "", false},
	{"A30", 1800, 450_000, 22_000, 25_000, "", false},
	{"RTX-A6000", 1800, 450_000, 46_000, 50_000, "", false},
	{"RTX-6000-ADA", 2500, 700_000, 46_000, 50_000, "", false},
	{"RTX-5000-ADA", 1500, 450_000, 30_000, 33_500, "", false},
	{"RTX-4000-ADA", 700, 180_000, 19_000, 21_000, "", false},
	{"RTX-A5000", 1000, 250_000, 22_000, 25_000, "", false},
	{"RTX-A4500", 800, 200_000, 19_000, 21_000, "", false},
	{"RTX-A4000", 600, 150_000, 15_000, 17_000, "", false},
	{"RTX-5090", 2000, 550_000, 30_000, 33_500, "", false},
	{"RTX-5080", 1100, 300_000, 15_000, 17_000, "", false},
	{"RTX-4090", 1250, 350_000, 22_000, 25_000, "", false},
	{"RTX-4080-SUPER", 1000, 270_000, 15_000, 17_000, "", false},
	{"RTX-4080", 900, 250_000, 15_000, 17_000, "", false},
	{"RTX-4070-TI", 700, 150_000, 11_000, 12_800, "", false},
	{"RTX-4070", 550, 120_000, 11_000, 12_800, "", false},
	{"RTX-4060", 350, 80_000, 7_500, 8_500, "", false},
	{"RTX-3090-TI", 900, 220_000, 22_000, 25_000, "", false},
	{"RTX-3090", 800, 200_000, 22_000, 25_000, "", false},
	{"RTX-3080-TI", 700, 140_000, 11_000, 12_800, "", false},
	{"RTX-3080", 600, 120_000, 9_500, 12_800, "", false},
	{"RTX-3070", 450, 90_000, 7_500, 8_500, "", false},
	{"RTX-3060", 300, 70_000, 7_500, 12_800, "", false},
	{"A10G", 700, 200_000, 22_000, 25_000, "", false},
	{"A10", 700, 200_000, 22_000, 25_000, "", false},
	{"L4", 600, 170_000, 22_000, 25_000, "", false},
	{"A16", 300, 80_000, 14_500, 17_000, "", false},
	{"A2", 300, 60_000, 14_500, 17_000, "", false},
	{"T4", 300, 80_000, 14_500, 17_000, "", false},
	{"V100-32GB", 1000, 250_000, 31_000, 33_500, "V100", false},
	{"V100-16GB", 800, 200_000, 15_500, 17_000, "V100", false},
	// Below every listed class: an unlisted model must not pay more than a known one.
	{UnknownModel, 250, 50_000, 0, MaxUnlistedMemMiB, "", false},
	{"", 100, 20_000, 0, 0, "", false},
}

// aliases are the vendor spellings of the listed classes (normalised: upper case, dashes for
// spaces, brand words dropped) that are not the class name itself.
var aliases = map[string]string{
	"H100-SXM5-80GB": "H100-80GB", "H100-SXM-80GB": "H100-80GB", "H100-80GB-HBM3": "H100-80GB",
	"H100-PCIE": "H100-80GB", "H100-PCIE-80GB": "H100-80GB", "H100-80GB-PCIE": "H100-80GB", "H100-SXM5": "H100-80GB",
	"H100-NVL": "H100-94GB", "H100-NVL-94GB": "H100-94GB", "H100-94GB-HBM3": "H100-94GB", "H100-SXM5-94GB": "H100-94GB",
	"H200-SXM-141GB": "H200", "H200-141GB": "H200", "H200-NVL": "H200", "H200-141GB-HBM3E": "H200",
	"B200-SXM-180GB": "B200", "B200-180GB": "B200", "B200-192GB": "B200",
	"GH200-480GB": "GH200", "GH200-96GB": "GH200", "GH200-144G-HBM3E": "GH200", "GH200-144GB": "GH200",
	"A100-SXM4-80GB": "A100-80GB", "A100-SXM-80GB": "A100-80GB", "A100-80GB-PCIE": "A100-80GB", "A100-PCIE-80GB": "A100-80GB",
	"A100-SXM4-40GB": "A100-40GB", "A100-PCIE-40GB": "A100-40GB", "A100-40GB-PCIE": "A100-40GB",
	"H800": "H800-80GB", "H800-PCIE": "H800-80GB", "H800-SXM5": "H800-80GB",
	"A800-SXM4-80GB": "A800-80GB", "A800-80GB-PCIE": "A800-80GB", "A800-PCIE-80GB": "A800-80GB",
	"A800-SXM4-40GB": "A800-40GB", "A800-PCIE-40GB": "A800-40GB", "A800-40GB-PCIE": "A800-40GB",
	"V100-SXM2-32GB": "V100-32GB", "V100-PCIE-32GB": "V100-32GB", "V100S": "V100-32GB", "V100S-PCIE-32GB": "V100-32GB",
	"V100-SXM2-16GB": "V100-16GB", "V100-PCIE-16GB": "V100-16GB",
	"RTX-6000-ADA-GENERATION": "RTX-6000-ADA", "RTX-5000-ADA-GENERATION": "RTX-5000-ADA",
	"RTX-4000-ADA-GENERATION": "RTX-4000-ADA", "A6000": "RTX-A6000", "A5000": "RTX-A5000", "A4500": "RTX-A4500", "A4000": "RTX-A4000",
}

// Classes returns the class table, CPU and unknown rows last.
func Classes() []Class {
	out := make([]Class, len(classes))
	copy(out, classes[:])
	return out
}

// normalise puts a model name in the table's spelling: upper case, words joined by dashes,
// without the brand words drivers put in front ("NVIDIA GeForce RTX 4090" is "RTX-4090").
func normalise(model string) string {
	words := strings.FieldsFunc(strings.ToUpper(model), func(r rune) bool { return r == ' ' || r == '-' || r == '_' })
	for len(words) > 0 && (words[0] == "NVIDIA" || words[0] == "GEFORCE" || words[0] == "TESLA" || words[0] == "QUADRO") {
		words = words[1:]
	}
	return strings.Join(words, "-")
}

// listed finds the row of a normalised name or of one of its aliases.
func listed(name string) (Class, bool) {
	if a, ok := aliases[name]; ok {
		name = a
	}
	if name == "" || name == strings.ToUpper(UnknownModel) {
		return Class{}, false
	}
	for _, c := range classes {
		if c.Model == name {
			return c, true
		}
	}
	return Class{}, false
}

// Resolve is the one class of a GPU model as a device reports it, given the memory one of its
// GPUs reports: the row of that name or of one of its vendor spellings; for a family name
// ("A100"), the row of the family whose memory range holds memMiB; else an unlisted class that
// keeps the normalised name (matching only requests for that name, priced and rewarded as the
// unknown row). Memory outside the class's range is refused with the reason. A model is
// resolved once, when a device joins or says hello; placement, pricing and proof deadlines all
// use the class it resolved to.
func Resolve(model string, memMiB int64) (Class, error) {
	name := normalise(model)
	if name == "" {
		return Class{}, iog.Errorf(iog.EINVALID, "a GPU without a model name")
	}
	c, ok := listed(name)
	if !ok {
		var fam []Class
		for _, r := range classes {
			if r.Family == name {
				fam = append(fam, r)
			}
		}
		for _, r := range fam {
			if memMiB >= r.MinMemMiB && memMiB <= r.MaxMemMiB {
				return r, nil
			}
		}
		if len(fam) > 0 {
			return Class{}, iog.Errorf(iog.EINVALID, "GPU model %s with %d MiB of memory fits none of the %s classes", name, memMiB, name)
		}
		c = classes[len(classes)-2]
		c.Model, c.Unlisted = name, true
	}
	if memMiB < c.MinMemMiB || memMiB > c.MaxMemMiB {
		what := "an " + c.Model
		if c.Unlisted {
			what = "a GPU of an unlisted model (" + c.Model + ")"
		}
		return Class{}, iog.Errorf(iog.EINVALID, "GPU memory of %d MiB does not fit %s: %d..%d MiB", memMiB, what, c.MinMemMiB, c.MaxMemMiB)
	}
	return c, nil
}

// ClassOf returns the class of a model as stored on a device (Resolve made it), compared
// without regard to case: the row of that model or of one of its vendor spellings; else, for a
// family name, the row it refines with the lowest multiplier ("H100" is H100-80GB, "A100" is
// A100-40GB: a name that does not say which one is charged and rewarded as the lesser); else
// the unknown-GPU row. "" is a CPU-only device.
func ClassOf(model string) Class {
	model = strings.TrimSpace(model)
	if model == "" {
		return classes[len(classes)-1]
	}
	name := normalise(model)
	if c, ok := listed(name); ok {
		return c
	}
	best := -1
	for i, c := range classes {
		if c.Family == name && (best < 0 || c.Multiplier < classes[best].Multiplier) {
			best = i
		}
	}
	if best >= 0 {
		return classes[best]
	}
	return classes[len(classes)-2]
}

// Canonical is the listed class a model name or vendor spelling names ("Tesla T4" is "T4").
func Canonical(model string) (string, bool) {
	c, ok := listed(normalise(model))
	return c.Model, ok
}

// Matches reports whether a device's model (as Resolve stored it) satisfies a renter's
// requested model: the same name, or the family of its class ("H100" takes H100-80GB and
// H100-94GB). An unlisted model matches only its own name: "H100-80GB-SXM" is no H100.
func Matches(have, want string) bool {
	if have == "" || want == "" {
		return false
	}
	if strings.EqualFold(have, want) {
		return true
	}
	c, ok := listed(normalise(have))
	return ok && c.Family != "" && strings.EqualFold(c.Model, have) && strings.EqualFold(c.Family, want)
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
