package devnet

import (
	"bytes"
	"debug/elf"
	"testing"
)

// TestPauseELF: the holder's program is a well-formed static executable for each architecture
// it is made for, whose entry point lies in its one loadable, executable segment; other
// architectures are refused with a reason.
func TestPauseELF(t *testing.T) {
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		b, err := pauseELF(arch)
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		if f.Machine != machine || f.Type != elf.ET_EXEC || f.Class != elf.ELFCLASS64 {
			t.Errorf("%s: machine %v type %v class %v", arch, f.Machine, f.Type, f.Class)
		}
		if len(f.Progs) != 1 {
			t.Fatalf("%s: %d program headers, want 1", arch, len(f.Progs))
		}
		p := f.Progs[0]
		if p.Type != elf.PT_LOAD || p.Flags != elf.PF_R|elf.PF_X || p.Filesz != uint64(len(b)) {
			t.Errorf("%s: segment %+v for %d bytes", arch, p.ProgHeader, len(b))
		}
		if f.Entry < p.Vaddr+64+56 || f.Entry >= p.Vaddr+p.Filesz {
			t.Errorf("%s: entry %#x outside the code at %#x..%#x", arch, f.Entry, p.Vaddr+64+56, p.Vaddr+p.Filesz)
		}
		if arch == "arm64" && f.Entry%4 != 0 {
			t.Errorf("arm64: entry %#x not 4-byte aligned", f.Entry)
		}
	}
	if _, err := pauseELF("riscv64"); err == nil {
		t.Error("riscv64: no error")
	}
}
