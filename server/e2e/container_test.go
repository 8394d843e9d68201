package e2e

import (
	"cmp"
	"encoding/json"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
)

// buildOut is where the Containerfile's build stage puts what the final stage copies.
const buildOut = "/out"

// image is the final stage of docs/deploy/Containerfile, laid out on this machine.
type image struct {
	root       string   // the final stage's filesystem
	user       string   // USER, uid:gid
	env        []string // ENV, in order
	entrypoint []string // ENTRYPOINT then CMD
}

// layOutImage does what building docs/deploy/Containerfile would, without a container
// engine (there is none here): it runs the build stage's RUN lines on a copy of what its
// COPY lines bring from the build context (the repository less what
// Containerfile.dockerignore leaves out), with the ARGs given and /out moved to a
// temporary directory, and then makes the final stage's filesystem as its COPY lines say,
// starting from nothing as FROM scratch does. Any other
// instruction in the final stage fails the test, so the file cannot change under it unseen.
func layOutImage(t *testing.T, args map[string]string) image {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(deployDir, "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	st := stages(string(text))
	if len(st) != 2 {
		t.Fatalf("the Containerfile has %d stages; this test lays out a build stage and a final one", len(st))
	}
	build, final := st[0], st[1]
	from := strings.Fields(build[0].args)
	buildName := from[len(from)-1] // FROM image AS name
	ignore, err := os.ReadFile(filepath.Join(deployDir, "Containerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	inContext := func(rel string) bool { return !ignored(string(ignore), rel) }
	src, out := t.TempDir(), t.TempDir()
	dir, env := src, os.Environ()
	for _, in := range build[1:] {
		switch in.op {
		case "WORKDIR":
			if dir = filepath.Join(src, in.args); os.MkdirAll(dir, 0o755) != nil {
				t.Fatalf("WORKDIR %s", in.args)
			}
		case "COPY":
			c := parseCopy(t, in)
			if c.from != "" {
				t.Fatalf("COPY %s in the build stage: not laid out by this test", in.args)
			}
			for _, s := range c.srcs {
				copyInto(t, "../..", s, c.dest(src, dir, s), "", inContext)
			}
		case "ARG":
			name, def, _ := strings.Cut(in.args, "=")
			env = append(env, name+"="+cmp.Or(args[name], def))
		case "RUN":
			cmd := exec.Command("sh", "-c", strings.ReplaceAll(in.args, buildOut+"/", out+"/"))
			cmd.Dir, cmd.Env = dir, env
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("RUN %s: %v\n%s", in.args, err, b)
			}
		default:
			t.Fatalf("build stage %s %s: not laid out by this test", in.op, in.args)
		}
	}

	img := image{root: t.TempDir()}
	if err := os.Chmod(img.root, 0o755); err != nil { // t.TempDir is 0700: USER could not enter /
		t.Fatal(err)
	}
	if base := strings.Fields(final[0].args)[0]; base != "scratch" {
		t.Fatalf("final stage FROM %s: this test lays out scratch only", base)
	}
	var cmdArgs []string
	for _, in := range final[1:] {
		switch in.op {
		case "COPY":
			c := parseCopy(t, in)
			if c.from != buildName {
				t.Fatalf("COPY %s: this test lays out copies from the build stage only", in.args)
			}
			for _, s := range c.srcs {
				from := s // a file of the build's Debian base, which this machine has too
				if strings.HasPrefix(s, buildOut+"/") {
					from = filepath.Join(out, strings.TrimPrefix(s, buildOut+"/"))
				}
				copyInto(t, filepath.Dir(from), filepath.Base(from), c.dest(img.root, img.root, s), c.chown, nil)
			}
		case "USER":
			img.user = in.args
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				img.env = append(img.env, kv)
			}
		case "ENTRYPOINT":
			img.entrypoint = jsonArray(t, in)
		case "CMD":
			cmdArgs = jsonArray(t, in)
		case "VOLUME", "EXPOSE":
		default:
			t.Fatalf("final stage %s %s: not laid out by this test", in.op, in.args)
		}
	}
	img.entrypoint = append(img.entrypoint, cmdArgs...)
	// The runtime mounts /proc; the image itself need not have it.
	if err := os.Mkdir(filepath.Join(img.root, "proc"), 0o555); err != nil {
		t.Fatal(err)
	}
	return img
}

// copyLine is a COPY instruction: its --from and --chown, its sources and destination.
type copyLine struct {
	from, chown string
	srcs        []string
	dst         string
}

func parseCopy(t *testing.T, in instruction) copyLine {
	t.Helper()
	var c copyLine
	f := strings.Fields(in.args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		switch k {
		case "from":
			c.from = v
		case "chown":
			c.chown = v
		default:
			t.Fatalf("COPY --%s: not laid out by this test", k)
		}
		f = f[1:]
	}
	if len(f) < 2 {
		t.Fatalf("COPY %s: no source or destination", in.args)
	}
	c.srcs, c.dst = f[:len(f)-1], f[len(f)-1]
	return c
}

// dest is where COPY puts src in a stage whose root is root and working directory dir:
// into the destination when it is a directory (several sources, or a trailing slash),
// else at it.
func (c copyLine) dest(root, dir, src string) string {
	to := filepath.Join(dir, c.dst)
	if filepath.IsAbs(c.dst) {
		to = filepath.Join(root, c.dst)
	}
	if len(c.srcs) > 1 || strings.HasSuffix(c.dst, "/") {
		to = filepath.Join(to, filepath.Base(src))
	}
	return to
}

func jsonArray(t *testing.T, in instruction) []string {
	t.Helper()
	var a []string
	if err := json.Unmarshal([]byte(in.args), &a); err != nil {
		t.Fatalf("%s %s: not exec form: %v", in.op, in.args, err)
	}
	return a
}

// ignored reports whether a .dockerignore's patterns leave the path rel (relative to the
// context) out: the last pattern that matches it or a directory above it decides, and a
// pattern with ! brings back.
func ignored(patterns, rel string) bool {
	out := false
	for _, p := range strings.Split(patterns, "\n") {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		back := strings.HasPrefix(p, "!")
		p = strings.TrimSuffix(strings.TrimPrefix(p, "!"), "/")
		for at := rel; at != "." && at != "/"; at = filepath.Dir(at) {
			if ok, _ := filepath.Match(p, at); ok {
				out = !back
				break
			}
		}
	}
	return out
}

// copyInto copies the file or directory name under dir to dst as COPY does, owned by
// chown (uid:gid) when given and by root otherwise, leaving out what keep (given the path
// relative to dir) refuses.
func copyInto(t *testing.T, dir, name, dst, chown string, keep func(string) bool) {
	t.Helper()
	uid, gid := 0, 0
	if chown != "" {
		u, g, _ := strings.Cut(chown, ":")
		var err1, err2 error
		uid, err1 = strconv.Atoi(u)
		gid, err2 = strconv.Atoi(cmp.Or(g, u))
		if err1 != nil || err2 != nil {
			t.Fatalf("--chown=%s: numeric ids only (scratch has no /etc/passwd)", chown)
		}
	}
	src := filepath.Join(dir, name)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx, _ := filepath.Rel(dir, path); keep != nil && !keep(ctx) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err = os.Mkdir(to, info.Mode().Perm()); errors.Is(err, fs.ErrExist) {
				err = nil
			}
		} else {
			var b []byte
			if b, err = os.ReadFile(path); err == nil {
				err = os.WriteFile(to, b, info.Mode().Perm())
			}
		}
		if err == nil {
			err = os.Chown(to, uid, gid)
		}
		return err
	})
	if err != nil {
		t.Fatalf("COPY %s %s: %v", src, dst, err)
	}
}

// command runs args in the image as `docker run` would: in its root alone, with a /proc,
// as its USER, with its ENV and then env.
func (img image) command(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	unshare, chroot := tool(t, "unshare"), tool(t, "chroot")
	// No pid namespace: it would need a fork, and the forked process, once chroot has changed
	// its user, would outlive a kill of unshare. The host's processes show in its /proc.
	cmd := exec.Command(unshare, append([]string{"--mount", "--mount-proc=" + filepath.Join(img.root, "proc"),
		chroot, "--userspec=" + img.user, img.root}, args...)...)
	cmd.Env = append(append([]string{}, img.env...), env...)
	return cmd
}

func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %v", name, err)
	}
	return path
}

// The image made by docs/deploy/Containerfile runs: its binary starts on an empty root
// (no libc, shell, /tmp or /etc/passwd) as its unprivileged user with only its ENV, makes
// its store and master key in the volume owner-only, refuses plain HTTP on 0.0.0.0 until
// told TLS ends in front of it (as the file's comment says), signs a person in, and the
// CLI works beside it as `docker exec` would run it. No container engine runs here, so the
// image is laid out and run by hand (layOutImage); pulling the base images is not tested.
func TestDeploy_ContainerImage_RunsOnScratchAsItsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		msg := "\n*** this test needs root (chroot, unshare) to run the container image's files as the image would."
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s\n*** CI=true: not running it fails the run.", msg)
		}
		t.Skipf("%s\n*** SKIPPING this test (with CI=true it would fail).", msg)
	}
	img := layOutImage(t, map[string]string{"VERSION": "v-test", "COMMIT": "c0ffee"})
	run := func(args ...string) []byte {
		t.Helper()
		return output(t, img.command(t, nil, args...))
	}
	bin := img.entrypoint[0]

	var v struct{ Version, Commit string }
	if err := json.Unmarshal(run(bin, "version"), &v); err != nil || v.Version != "v-test" || v.Commit != "c0ffee" {
		t.Fatalf("version %+v (%v): the build arguments did not reach the binary", v, err)
	}

	// The image's own address is 0.0.0.0: plain HTTP there is refused, naming the way out.
	out, err := img.command(t, []string{"TWOFOLD_ADDR=0.0.0.0:0"}, img.entrypoint...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 || !strings.Contains(string(out), "--behind-proxy") {
		t.Fatalf("serve on 0.0.0.0 without TLS or --behind-proxy: %v\n%s", err, out)
	}

	var app wire.AppCreated
	if err := json.Unmarshal(run(bin, "apps", "create", "--id", "shop", "--origin", origin), &app); err != nil || app.APIKey == "" {
		t.Fatalf("apps create: %+v %v", app, err)
	}
	p, err := launchCmd(t, img.command(t, []string{"TWOFOLD_ADDR=0.0.0.0:0", "TWOFOLD_BEHIND_PROXY=true"}, img.entrypoint...), "http")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	ver := &verifier{t: t, URL: "http://127.0.0.1:" + u.Port(), APIKey: app.APIKey, Clock: &clock{}}
	e := ver.enroll("ivy")
	if r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, time.Now().Add(30*time.Second))}); r.Status != 200 || r.str("token") == "" {
		t.Fatalf("verify in the container: %d %s", r.Status, r.Raw)
	}
	var b struct {
		TOTPCredentials int `json:"totp_credentials"`
	}
	if err := json.Unmarshal(run(bin, "backup", "--to", "/var/lib/twofold/backup.db"), &b); err != nil || b.TOTPCredentials != 1 {
		t.Fatalf("backup while serving: %+v %v", b, err)
	}

	uid, gid, _ := strings.Cut(img.user, ":")
	for _, name := range []string{"twofold.db", "master.key", "backup.db"} {
		fi, err := os.Stat(filepath.Join(img.root, "var/lib/twofold", name))
		if err != nil {
			t.Fatalf("the volume lacks %s: %v", name, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if strconv.Itoa(int(st.Uid)) != uid || strconv.Itoa(int(st.Gid)) != gid || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: owner %d:%d mode %v, want %s mode 0600", name, st.Uid, st.Gid, fi.Mode().Perm(), img.user)
		}
	}
}
