package hwinfo

import (
	"testing"
)

// Internal tests for the cases the testdata hosts do not reach.

func TestParseCPUInfoArchitectures(t *testing.T) {
	tests := []struct {
		name, cpuinfo string
		want          cpuInfo
	}{
		{"32-bit ARM", "Processor\t: ARMv7 Processor rev 4 (v7l)\nprocessor\t: 0\nBogoMIPS\t: 38.40\n\nprocessor\t: 1\nBogoMIPS\t: 38.40\n\nHardware\t: BCM2835\n",
			cpuInfo{model: "ARMv7 Processor rev 4 (v7l)", threads: 2}},
		{"POWER9", "processor\t: 0\ncpu\t\t: POWER9 (raw), altivec supported\nclock\t\t: 2300.000000MHz\n\nprocessor\t: 1\ncpu\t\t: POWER9 (raw), altivec supported\n",
			cpuInfo{model: "POWER9 (raw), altivec supported", threads: 2}},
		{"unknown ARM part", "processor\t: 0\nCPU implementer\t: 0x61\nCPU part\t: 0x039\n",
			cpuInfo{model: "ARM implementer 0x61 part 0x039", threads: 1}},
		{"topology without physical id", "processor : 0\ncore id : 0\n\nprocessor : 1\ncore id : 1\n\nprocessor : 2\ncore id : 0\n",
			cpuInfo{cores: 2, threads: 3}},
		{"empty", "", cpuInfo{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseCPUInfo([]byte(tt.cpuinfo)); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, stat string
		want       cpuTimes
		wantErr    bool
	}{
		{name: "guest columns not counted twice", stat: "cpu  10 20 30 40 50 60 70 80 90 100\n", want: cpuTimes{busy: 270, total: 360}},
		{name: "2.4 kernel, four columns", stat: "cpu 1 2 3 4\n", want: cpuTimes{busy: 6, total: 10}},
		{name: "three columns", stat: "cpu 1 2 3\n", wantErr: true},
		{name: "old kernel, five columns", stat: "cpu 1 2 3 4 5\n", want: cpuTimes{busy: 6, total: 15}},
		{name: "per-CPU lines only", stat: "cpu0 1 2 3 4 5\n", wantErr: true},
		{name: "garbage", stat: "cpu 1 2 x 4 5\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.stat))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestCPUPercent(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur cpuTimes
		want      float64
	}{
		{"half busy", cpuTimes{busy: 100, total: 200}, cpuTimes{busy: 150, total: 300}, 50},
		{"no time passed", cpuTimes{busy: 100, total: 200}, cpuTimes{busy: 100, total: 200}, 0},
		{"counters went back", cpuTimes{busy: 100, total: 200}, cpuTimes{busy: 10, total: 20}, 0},
		{"busy went back alone", cpuTimes{busy: 100, total: 200}, cpuTimes{busy: 90, total: 300}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuPercent(tt.prev, tt.cur); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseSMICUDA(t *testing.T) {
	tests := []struct{ name, out, want string }{
		{"header", "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4     |", "12.4"},
		{"squeezed", "CUDA Version: 12.8|", "12.8"},
		{"placeholder", "CUDA Version: N/A", ""},
		{"missing", "NVIDIA-SMI has failed", ""},
		{"dangling", "CUDA Version:", ""},
		{"dot first", "CUDA Version: .4", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseSMICUDA([]byte(tt.out)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
