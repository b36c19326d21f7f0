// SPDX-License-Identifier: Apache-2.0

//go:build linux

package packaging

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// minimalCaps are the capabilities udsvisor's container keeps: the
// manifest grants exactly these, and TestContainerImage runs the image
// with no others (README, "In a container").
var minimalCaps = []string{"CHOWN", "FOWNER", "KILL", "SETGID", "SETUID"}

// TestKubernetesManifest checks the invariants that make
// packaging/kubernetes/demo.yaml work, without a YAML library: the file
// is ours and written in one style (two-space indents, block lists,
// literal blocks for the ConfigMap), so the test reads it line by line
// and fails if it cannot find what it looks for. It checks that the
// ConfigMap's services.toml is the image's own file and that udsvisor's
// parser accepts it, that the socket's directory is the emptyDir's mount
// in both containers, that the socket's group is the Pod's fsGroup, that
// nginx proxies to that socket (and keeps the group: it does not start
// as root), and the udsvisor container's capabilities.
func TestKubernetesManifest(t *testing.T) {
	b, err := os.ReadFile("kubernetes/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")

	toml := literalBlock(t, lines, "services.toml")
	image, err := os.ReadFile("container/services.toml")
	if err != nil {
		t.Fatal(err)
	}
	if toml != string(image) {
		t.Errorf("the ConfigMap's services.toml differs from packaging/container/services.toml (the image's); keep them equal")
	}
	// command[0] is the image's /udsvisor, which need not exist on this
	// host: the parser checks it is an executable file, so it sees
	// /bin/true there. TestContainerImage runs the real one.
	const cmd = `command = ["/udsvisor", "demo"]`
	if !strings.Contains(toml, cmd) {
		t.Fatalf("services.toml has no line %s", cmd)
	}
	cfg, err := config.Parse("demo.yaml:services.toml", []byte(strings.Replace(toml, cmd, `command = ["/bin/true", "demo"]`, 1)))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	var socks []*config.Socket
	for _, s := range cfg.Services {
		if !userIn(t, "container/passwd", s.User) {
			t.Errorf("service %s: user %q is not in packaging/container/passwd", s.Name, s.User)
		}
		socks = append(socks, s.Sockets...)
	}
	if len(socks) != 1 || !socks[0].IsUnix() {
		t.Fatalf("want one Unix socket in services.toml, got %d", len(socks))
	}
	sock := socks[0]
	dir := filepath.Dir(sock.Path)

	// The emptyDir, and its mount in both containers.
	vol := ""
	for i, l := range lines {
		if strings.TrimSpace(l) == "emptyDir:" && i > 0 {
			vol = strings.TrimPrefix(strings.TrimSpace(lines[i-1]), "- name: ")
		}
	}
	if vol == "" {
		t.Fatal("no emptyDir volume (a `- name: X` line followed by `emptyDir:`)")
	}
	for _, c := range []string{"app", "nginx", "socket-dir"} {
		if got := mountPath(t, container(t, lines, c), vol); got != dir {
			t.Errorf("container %s mounts volume %s at %q, want the socket's directory %q", c, vol, got, dir)
		}
	}

	// The kubelet makes an emptyDir 0777; udsvisor refuses a socket
	// directory that group or others may write.
	chmod := regexp.MustCompile(`command: \["chmod", "(0[0-7]{3})", "([^"]+)"\]`).FindStringSubmatch(strings.Join(container(t, lines, "socket-dir"), "\n"))
	if chmod == nil || chmod[2] != dir {
		t.Errorf("init container socket-dir does not chmod %s", dir)
	} else if m, _ := strconv.ParseUint(chmod[1], 8, 32); m&0o022 != 0 {
		t.Errorf("init container socket-dir makes %s %s, which group or others may write: udsvisor refuses it", dir, chmod[1])
	}

	// The socket's group is the fsGroup, by the image's /etc/group and
	// by this host's (the parser's).
	fsGroup, err := strconv.Atoi(field(t, lines, "fsGroup"))
	if err != nil {
		t.Fatalf("fsGroup: %v", err)
	}
	if gid := groupIn(t, "container/group", sock.GroupName); gid != fsGroup {
		t.Errorf("socket group %s is gid %d in packaging/container/group, fsGroup is %d: nginx could not connect", sock.GroupName, gid, fsGroup)
	}
	if int(sock.GID) != fsGroup {
		t.Errorf("socket group %s is gid %d on this host, fsGroup is %d", sock.GroupName, sock.GID, fsGroup)
	}
	if sock.Mode&0o060 != 0o060 {
		t.Errorf("socket mode %04o: the group needs rw to connect", sock.Mode)
	}

	// nginx proxies to that socket, and runs as a non-root uid: a root
	// master would initgroups(3) its workers and drop the fsGroup.
	conf := literalBlock(t, lines, "nginx.conf")
	ups := regexp.MustCompile(`unix:(/[^\s;:]+)`).FindAllStringSubmatch(conf, -1)
	if len(ups) == 0 {
		t.Error("nginx.conf proxies to no unix: socket")
	}
	for _, u := range ups {
		if u[1] != sock.Path {
			t.Errorf("nginx.conf proxies to unix:%s, the socket is %s", u[1], sock.Path)
		}
	}
	if regexp.MustCompile(`(?m)^\s*user\s`).MatchString(conf) {
		t.Error("nginx.conf has a user directive: nginx runs as a non-root uid and keeps its groups")
	}
	ngx := container(t, lines, "nginx")
	if u := fieldIn(ngx, "runAsUser"); u == "" || u == "0" {
		t.Errorf("nginx runAsUser is %q, want a non-root uid", u)
	}
	if !slices.Contains(ngx, `          command: ["nginx", "-e", "stderr", "-c", "/etc/nginx-pod/nginx.conf", "-g", "daemon off;"]`) ||
		mountPath(t, ngx, "config") != "/etc/nginx-pod" {
		t.Error("the nginx container does not run nginx -c /etc/nginx-pod/nginx.conf from the ConfigMap")
	}
	if nginx, err := exec.LookPath("nginx"); err == nil {
		checkNginxConf(t, nginx, conf)
	} else {
		testutil.Unavailable(t, "nginx is not installed: cannot run nginx -t on the manifest's nginx.conf")
	}

	// udsvisor: root, the image, the config mount, exactly minimalCaps.
	app := container(t, lines, "app")
	if fieldIn(app, "image") != "udsvisor:local" || fieldIn(app, "runAsUser") != "0" || fieldIn(app, "runAsNonRoot") != "false" {
		t.Error("container app: want image udsvisor:local, runAsUser 0, runAsNonRoot false")
	}
	if mountPath(t, app, "config") != "/etc/udsvisor" {
		t.Error("container app does not mount the ConfigMap at /etc/udsvisor")
	}
	want := `["` + strings.Join(minimalCaps, `", "`) + `"]`
	if fieldIn(app, "drop") != `["ALL"]` || fieldIn(app, "add") != want {
		t.Errorf("container app: want capabilities drop [\"ALL\"], add %s", want)
	}
}

// checkNginxConf runs nginx -t on conf as the Pod runs it: the pid and
// temporary paths in /tmp are not written by -t.
func checkNginxConf(t *testing.T, nginx, conf string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nginx.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-t", "-e", "stderr", "-c", p).CombinedOutput(); err != nil {
		t.Errorf("nginx -t on the manifest's nginx.conf: %v\n%s", err, out)
	}
}

// literalBlock returns the text of the ConfigMap key `  KEY: |`, with the
// block's four-space indent removed.
func literalBlock(t *testing.T, lines []string, key string) string {
	t.Helper()
	start := slices.Index(lines, "  "+key+": |")
	if start < 0 {
		t.Fatalf("no literal block %q in the manifest", key)
	}
	var b strings.Builder
	for _, l := range lines[start+1:] {
		if l != "" && !strings.HasPrefix(l, "    ") {
			break
		}
		b.WriteString(strings.TrimPrefix(l, "    ") + "\n")
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

// container returns the lines of the (init) container `- name: NAME`,
// up to the next line indented as little as its `- `.
func container(t *testing.T, lines []string, name string) []string {
	t.Helper()
	for i, l := range lines {
		if strings.TrimSpace(l) != "- name: "+name || !strings.HasPrefix(strings.TrimSpace(lines[i+1]), "image:") {
			continue
		}
		indent := len(l) - len(strings.TrimLeft(l, " "))
		end := i + 1
		for end < len(lines) && (lines[end] == "" || len(lines[end])-len(strings.TrimLeft(lines[end], " ")) > indent) {
			end++
		}
		return lines[i:end]
	}
	t.Fatalf("no container %q (a `- name: %s` line followed by `image:`)", name, name)
	return nil
}

// mountPath returns the mountPath of volume vol in a container's lines.
func mountPath(t *testing.T, lines []string, vol string) string {
	t.Helper()
	for i, l := range lines {
		if strings.TrimSpace(l) == "- name: "+vol && i+1 < len(lines) {
			if p, ok := strings.CutPrefix(strings.TrimSpace(lines[i+1]), "mountPath: "); ok {
				return p
			}
		}
	}
	return ""
}

// field returns the value of the only `KEY: value` line in lines.
func field(t *testing.T, lines []string, key string) string {
	t.Helper()
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), key+":") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d lines with key %s in the manifest, want 1", n, key)
	}
	return fieldIn(lines, key)
}

// fieldIn returns the value of the first `KEY: value` line in lines,
// without a trailing comment.
func fieldIn(lines []string, key string) string {
	for _, l := range lines {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+":"); ok {
			v, _, _ = strings.Cut(v, " #")
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// userIn reports whether the passwd file has user name.
func userIn(t *testing.T, file, name string) bool {
	t.Helper()
	for _, f := range colonFile(t, file) {
		if f[0] == name {
			return true
		}
	}
	return false
}

// groupIn returns the gid of group name in the group file, or -1.
func groupIn(t *testing.T, file, name string) int {
	t.Helper()
	for _, f := range colonFile(t, file) {
		if f[0] == name && len(f) > 2 {
			gid, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("%s: group %s: %v", file, name, err)
			}
			return gid
		}
	}
	return -1
}

func colonFile(t *testing.T, file string) [][]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		out = append(out, strings.Split(l, ":"))
	}
	return out
}

// TestContainerImage builds packaging/container/Containerfile with podman
// from the release binary, runs it as Kubernetes would run the demo.yaml
// Pod's app container (no network, only minimalCaps, the socket directory
// a root:33 0750 volume, as the init container leaves the emptyDir),
// serves a request through the socket from the host, then through the
// manifest's nginx.conf as the sidecar runs it (see sidecar), and stops
// it: exit status 0 within the stop timeout.
func TestContainerImage(t *testing.T) {
	testutil.RequireRoot(t)
	podman := testutil.RequireCommand(t, "podman")
	// Debian 12's default runtime, crun, refuses a host with hybrid
	// cgroups ("cgroups in hybrid mode not supported"); runc does not.
	var global []string
	if _, err := exec.LookPath("runc"); err == nil {
		global = []string{"--runtime", "runc"}
	}
	pm := func(args ...string) (string, error) {
		out, err := exec.Command(podman, append(slices.Clone(global), args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}

	ctx := t.TempDir()
	rel := t.TempDir()
	for _, name := range release(t, "..", rel, "TARGETS=linux/amd64") {
		switch {
		case strings.HasSuffix(name, "_linux_amd64"):
			testutil.CopyFile(t, filepath.Join(rel, name), filepath.Join(ctx, "udsvisor"), 0o755)
		case name == "LICENSE" || name == "NOTICE":
			testutil.CopyFile(t, filepath.Join(rel, name), filepath.Join(ctx, name), 0o644)
		}
	}
	for _, f := range []string{"Containerfile", "passwd", "group", "services.toml"} {
		testutil.CopyFile(t, filepath.Join("container", f), filepath.Join(ctx, f), 0o644)
	}
	tag := fmt.Sprintf("localhost/udsvisor:test-%d", os.Getpid())
	if out, err := pm("build", "--network=none", "-t", tag, "-f", filepath.Join(ctx, "Containerfile"), ctx); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	t.Cleanup(func() { pm("rmi", "--force", tag) })
	imageNotices(t, pm, tag, rel)

	vol := reachableDir(t)
	gid := groupIn(t, "container/group", "www-data")
	if err := os.Chown(vol, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(vol, 0o750); err != nil {
		t.Fatal(err)
	}
	var nofile, nproc unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile)
	unix.Getrlimit(unix.RLIMIT_NPROC, &nproc)
	// podman's default limits (nofile 1048576 and its nproc) are above
	// what a CI container may raise to: EPERM from the runtime. Below
	// ours, nothing needs raising.
	nprocMax := min(nproc.Max, 4096)
	name := fmt.Sprintf("udsvisor-test-%d", os.Getpid())
	run := []string{"run", "-d", "--name", name, "--network=none",
		"--cap-drop=all", "--cap-add=" + strings.Join(minimalCaps, ","),
		fmt.Sprintf("--ulimit=nofile=%d:%d", nofile.Max, nofile.Max),
		fmt.Sprintf("--ulimit=nproc=%d:%d", nprocMax, nprocMax),
		"-v", vol + ":/run/app", tag}
	if out, err := pm(run...); err != nil {
		t.Fatalf("podman run: %v\n%s\n(the runtime's error above; with crun on a hybrid-cgroup host, install runc)", err, out)
	}
	t.Cleanup(func() { pm("rm", "--force", name) })
	logs := func() string { out, _ := pm("logs", name); return out }

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(vol, "http.sock"))
		},
	}}
	var body string
	testutil.Eventually(t, 20*time.Second, func() error {
		resp, err := client.Get("http://demo/")
		if err != nil {
			return fmt.Errorf("%w\ncontainer log:\n%s", err, logs())
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err
	})
	if !strings.HasPrefix(body, "Hello from the udsvisor demo") || !strings.Contains(body, "user nobody") {
		t.Errorf("GET / through the socket: %q, want the demo's greeting as user nobody", body)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(vol, "http.sock"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 65534 || int(st.Gid) != gid || st.Mode&0o7777 != 0o660 {
		t.Errorf("socket is %d:%d %04o, want 65534:%d 0660", st.Uid, st.Gid, st.Mode&0o7777, gid)
	}

	sidecar(t, vol, gid)

	if out, err := pm("stop", "-t", "20", name); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	code, err := pm("inspect", "--format", "{{.State.ExitCode}}", name)
	if err != nil || code != "0" {
		t.Errorf("udsvisor exited with %q (%v) after SIGTERM, want 0; log:\n%s", code, err, logs())
	}
}

// sidecar runs the host's nginx with the manifest's nginx.conf as the
// Pod's nginx container runs: uid 101, gid 101, and the fsGroup gid as
// its supplementary group. Only the paths change: the socket is in vol,
// nginx listens on a Unix socket instead of port 8080 (no port to
// collide with) and writes under a directory of its own. With the group
// a request is served (200); without it nginx answers 502, because the
// socket refuses it: the reason the fsGroup must be the socket's group.
func sidecar(t *testing.T, vol string, gid int) {
	t.Helper()
	nginx := testutil.RequireCommand(t, "nginx")
	setpriv := testutil.RequireCommand(t, "setpriv")
	b, err := os.ReadFile("kubernetes/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conf := literalBlock(t, strings.Split(string(b), "\n"), "nginx.conf")
	work := reachableDir(t)
	if err := os.Chown(work, 101, 101); err != nil {
		t.Fatal(err)
	}
	front := filepath.Join(work, "front.sock")
	for _, r := range [][2]string{
		{"/tmp/", work + "/"}, // first: vol and work are in /tmp too
		{"unix:/run/app/http.sock", "unix:" + filepath.Join(vol, "http.sock")},
		{"listen 8080;", "listen unix:" + front + ";"},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("the manifest's nginx.conf has no %q", r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	p := filepath.Join(work, "nginx.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", front)
		},
	}}
	for _, c := range []struct {
		groups string
		want   int
	}{
		{"--groups=" + strconv.Itoa(gid), http.StatusOK},
		{"--clear-groups", http.StatusBadGateway},
	} {
		os.Remove(front)
		cmd := exec.Command(setpriv, "--reuid=101", "--regid=101", c.groups,
			nginx, "-e", "stderr", "-c", p, "-g", "daemon off;")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		// The access log is /dev/stdout, which uid 101 must open: in a
		// container the runtime hands stdio to the container's uid; here
		// it is /dev/null, as a pipe of ours would be root's.
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer devnull.Close()
		cmd.Stdout = devnull
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		code := 0
		testutil.Eventually(t, 10*time.Second, func() error {
			resp, err := client.Get("http://demo/")
			if err != nil {
				return fmt.Errorf("nginx %s: %w\n%s", c.groups, err, stderr.String())
			}
			resp.Body.Close()
			code = resp.StatusCode
			return nil
		})
		cmd.Process.Signal(unix.SIGQUIT)
		cmd.Wait()
		if code != c.want {
			t.Errorf("nginx as uid 101 %s: GET / gave %d, want %d\n%s", c.groups, code, c.want, stderr.String())
		}
	}
}

// reachableDir makes a directory that other users can reach: t.TempDir
// is inside a 0700 directory, which nginx's uid 101 could not enter.
func reachableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "udsvisor-container-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// imageNotices checks that the image carries the release's LICENSE and
// NOTICE, byte for byte, in /usr/share/doc/udsvisor.
func imageNotices(t *testing.T, pm func(...string) (string, error), tag, rel string) {
	t.Helper()
	name := fmt.Sprintf("udsvisor-notices-%d", os.Getpid())
	if out, err := pm("create", "--name", name, tag); err != nil {
		t.Fatalf("podman create: %v\n%s", err, out)
	}
	defer pm("rm", "--force", name)
	got := t.TempDir()
	for _, f := range []string{"LICENSE", "NOTICE"} {
		if out, err := pm("cp", name+":/usr/share/doc/udsvisor/"+f, filepath.Join(got, f)); err != nil {
			t.Errorf("podman cp %s: %v\n%s", f, err, out)
			continue
		}
		a, _ := os.ReadFile(filepath.Join(got, f))
		b, _ := os.ReadFile(filepath.Join(rel, f))
		if len(b) == 0 || string(a) != string(b) {
			t.Errorf("the image's /usr/share/doc/udsvisor/%s is not the release's", f)
		}
	}
}
