package integration

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// What the Dockerfile relies on: CGO_ENABLED=0 gives a static binary (it
// runs on distroless/static, which has no libc), and -X main.version sets
// the version it reports.
func TestStaticBuildWithVersion(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ELF check")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "kbroker")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=v0.0.0-image-test", "-o", bin, "github.com/kbroker/kbroker/cmd/kbroker")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has a dynamic loader (PT_INTERP): not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "kbroker v0.0.0-image-test ") {
		t.Errorf("version: %q %v", out, err)
	}
	if fi, err := os.Stat(bin); err == nil && fi.Size() > 30<<20 {
		t.Errorf("binary is %d MiB; the image must stay well under 30 MB", fi.Size()>>20)
	}
}
