package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// ErrNoDocker says no Docker engine answers on this machine.
var ErrNoDocker = errors.New("testnet: no Docker engine answers")

// Docker drives the docker CLI for a compose testnet.
type Docker struct {
	compose []string // "docker compose" (the plugin) or "docker-compose"
	Version string   // the engine's version
}

// FindDocker checks that a Docker engine answers and finds a compose tool:
// the `docker compose` plugin, else `docker-compose`.
func FindDocker(ctx context.Context) (*Docker, error) {
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, fmt.Errorf("%w: the docker command is not installed", ErrNoDocker)
	}
	vctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(vctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: `docker version`: %v: %s", ErrNoDocker, err, firstLine(out))
	}
	d := &Docker{Version: strings.TrimSpace(string(out))}
	if exec.CommandContext(vctx, "docker", "compose", "version").Run() == nil {
		d.compose = []string{"docker", "compose"}
	} else if _, err := exec.LookPath("docker-compose"); err == nil {
		d.compose = []string{"docker-compose"}
	} else {
		return nil, fmt.Errorf("%w: neither `docker compose` nor `docker-compose` is installed", ErrNoDocker)
	}
	return d, nil
}

// ComposeTool is the compose command in use ("docker compose" or "docker-compose").
func (d *Docker) ComposeTool() string { return strings.Join(d.compose, " ") }

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// run runs a command and returns its standard output; a failure carries
// the command and the tail of its error output.
func run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		return stdout.Bytes(), fmt.Errorf("testnet: `%s %s`: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

func (d *Docker) composeRun(ctx context.Context, c *Compose, args ...string) ([]byte, error) {
	full := append(append(d.compose[1:len(d.compose):len(d.compose)], "-f", ComposeFile, "-p", c.Project), args...)
	return run(ctx, c.Dir, d.compose[0], full...)
}

// Build builds the image from the build directory (the binary must be at
// c.BinaryPath()).
func (d *Docker) Build(ctx context.Context, c *Compose) error {
	_, err := run(ctx, c.BuildDir(), "docker", "build", "--quiet", "-t", c.Image, ".")
	return err
}

// Up creates the network and starts every node.
func (d *Docker) Up(ctx context.Context, c *Compose) error {
	_, err := d.composeRun(ctx, c, "up", "-d", "--no-build")
	return err
}

// Down stops and removes the containers, the network and the image.
func (d *Docker) Down(ctx context.Context, c *Compose) error {
	_, err := d.composeRun(ctx, c, "down", "--remove-orphans", "--timeout", "10")
	if err != nil {
		return err
	}
	if _, err := run(ctx, c.Dir, "docker", "image", "inspect", c.Image); err == nil {
		if _, err := run(ctx, c.Dir, "docker", "rmi", c.Image); err != nil {
			return err
		}
	}
	return nil
}

// Exec runs `ore ARGS` inside a node's container and returns its output.
func (d *Docker) Exec(ctx context.Context, c *Compose, name string, args ...string) ([]byte, error) {
	return run(ctx, c.Dir, "docker", append([]string{"exec", c.Container(name), "/ore"}, args...)...)
}

// Kill kills a node's container with SIGKILL: the process gets no chance
// to flush or close anything, as on power loss.
func (d *Docker) Kill(ctx context.Context, c *Compose, name string) error {
	_, err := run(ctx, c.Dir, "docker", "kill", c.Container(name))
	return err
}

// Stop stops a node's container with SIGTERM (then SIGKILL after 10 s).
func (d *Docker) Stop(ctx context.Context, c *Compose, name string) error {
	_, err := run(ctx, c.Dir, "docker", "stop", "--time", "10", c.Container(name))
	return err
}

// Start starts a stopped or killed node again, on the same repo.
func (d *Docker) Start(ctx context.Context, c *Compose, name string) error {
	_, err := run(ctx, c.Dir, "docker", "start", c.Container(name))
	return err
}

// Partition cuts a node off the testnet's network: its process runs on,
// with no route to any other node.
func (d *Docker) Partition(ctx context.Context, c *Compose, name string) error {
	_, err := run(ctx, c.Dir, "docker", "network", "disconnect", "--force", c.Project, c.Container(name))
	return err
}

// Heal reconnects a partitioned node, at its old address.
func (d *Docker) Heal(ctx context.Context, c *Compose, name string) error {
	nd, err := c.Node(name)
	if err != nil {
		return err
	}
	_, err = run(ctx, c.Dir, "docker", "network", "connect", "--ip", nd.IP, c.Project, c.Container(name))
	return err
}

// State is a container's state as docker reports it: "running", "exited",
// ..., or "missing"; Connected says whether it is on the testnet's network.
func (d *Docker) State(ctx context.Context, c *Compose, name string) (state string, connected bool, err error) {
	out, err := run(ctx, c.Dir, "docker", "inspect", "--format",
		"{{.State.Status}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", c.Container(name))
	if err != nil {
		if strings.Contains(err.Error(), "No such") {
			return "missing", false, nil
		}
		return "", false, err
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "", false, fmt.Errorf("testnet: docker inspect %s said nothing", c.Container(name))
	}
	for _, n := range f[1:] {
		if n == c.Project {
			connected = true
		}
	}
	return f[0], connected, nil
}

// Logs returns the last lines of a node's log.
func (d *Docker) Logs(ctx context.Context, c *Compose, name string, tail int) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "docker", "logs", "--tail", fmt.Sprint(tail), c.Container(name))
	return cmd.CombinedOutput()
}

// GatewayURL is the gateway's HTTP address on the host's loopback.
func (d *Docker) GatewayURL(ctx context.Context, c *Compose) (string, error) {
	for _, n := range c.Nodes {
		if n.Role != ComposeGateway {
			continue
		}
		out, err := run(ctx, c.Dir, "docker", "port", c.Container(n.Name), fmt.Sprintf("%d/tcp", GatewayHTTPPort))
		if err != nil {
			return "", err
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.HasPrefix(l, "127.0.0.1:") {
				return "http://" + strings.TrimSpace(l), nil
			}
		}
		return "", fmt.Errorf("testnet: the gateway's port %d is not published on 127.0.0.1 (docker port said %q)", GatewayHTTPPort, strings.TrimSpace(string(out)))
	}
	return "", fmt.Errorf("testnet: the testnet has no gateway")
}
