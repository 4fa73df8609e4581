package autoscale

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// unsafeCommandChars end or split a runtime API command: HAProxy reads one
// command per line and splits a line at ';'. Names and addresses must not
// contain them, nor spaces, which separate arguments.
const unsafeCommandChars = " ;\r\n\t"

// maxResponseBytes bounds the response read for one command.
const maxResponseBytes = 1 << 20

// RuntimeAPI sends commands to HAProxy's runtime API on a stats socket
// with level admin. Each command uses its own connection, which HAProxy
// closes after the response.
type RuntimeAPI struct {
	// Network is "unix" or "tcp".
	Network string
	// Address is the socket path, or host:port for TCP.
	Address string
	// Timeout bounds one command, connection included.
	Timeout time.Duration
}

// NewRuntimeAPI returns a client of the socket at address: host:port is a
// TCP socket, anything else a unix socket path.
func NewRuntimeAPI(address string, timeout time.Duration) *RuntimeAPI {
	network := "unix"
	if host, port, err := net.SplitHostPort(address); err == nil && host != "" {
		if _, err := strconv.Atoi(port); err == nil {
			network = "tcp"
		}
	}
	return &RuntimeAPI{Network: network, Address: address, Timeout: timeout}
}

// CommandError is a runtime API command that HAProxy rejected.
type CommandError struct {
	Command  string
	Response string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("haproxy: command %q failed: %s", e.Command, e.Response)
}

// Exec sends one command and returns HAProxy's response with surrounding
// white space removed. It fails when the command contains a line break or
// the socket cannot be used, and leaves judging the response to the caller.
func (c *RuntimeAPI) Exec(ctx context.Context, command string) (string, error) {
	if strings.ContainsAny(command, "\r\n") {
		return "", fmt.Errorf("haproxy: command %q contains a line break", command)
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.Network, c.Address)
	if err != nil {
		return "", fmt.Errorf("haproxy: connect to runtime API %s: %w", c.Address, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", fmt.Errorf("haproxy: send %q: %w", command, err)
	}
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(conn), maxResponseBytes))
	if err != nil {
		return "", fmt.Errorf("haproxy: read the response to %q: %w", command, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// expectEmpty runs a command whose success HAProxy reports with an empty
// response, as the enable, disable and set commands do.
func (c *RuntimeAPI) expectEmpty(ctx context.Context, command string) error {
	out, err := c.Exec(ctx, command)
	if err != nil {
		return err
	}
	if out != "" {
		return &CommandError{Command: command, Response: out}
	}
	return nil
}

// expectPrefix runs a command whose success response starts with want.
func (c *RuntimeAPI) expectPrefix(ctx context.Context, command, want string) error {
	out, err := c.Exec(ctx, command)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(out, want) {
		return &CommandError{Command: command, Response: out}
	}
	return nil
}

func serverRef(backend, server string) (string, error) {
	if backend == "" || server == "" || strings.ContainsAny(backend+server, unsafeCommandChars+"/") {
		return "", fmt.Errorf("haproxy: invalid server %q in backend %q", server, backend)
	}
	return backend + "/" + server, nil
}

// AddServer adds a server at addr with the given server keywords. HAProxy
// 2.6 starts it in maintenance, with its checks disabled.
func (c *RuntimeAPI) AddServer(ctx context.Context, backend, server, addr, options string) error {
	ref, err := serverRef(backend, server)
	if err != nil {
		return err
	}
	if addr == "" || strings.ContainsAny(addr, unsafeCommandChars) || strings.ContainsAny(options, ";\r\n") {
		return fmt.Errorf("haproxy: invalid address %q or options %q for %s", addr, options, ref)
	}
	cmd := strings.TrimSpace("add server " + ref + " " + addr + " " + options)
	return c.expectPrefix(ctx, cmd, "New server registered.")
}

// DelServer deletes a server, which must be in maintenance and hold no
// connection.
func (c *RuntimeAPI) DelServer(ctx context.Context, backend, server string) error {
	ref, err := serverRef(backend, server)
	if err != nil {
		return err
	}
	return c.expectPrefix(ctx, "del server "+ref, "Server deleted.")
}

// SetState sets a server's administrative state: ready, drain or maint.
func (c *RuntimeAPI) SetState(ctx context.Context, backend, server, state string) error {
	ref, err := serverRef(backend, server)
	if err != nil {
		return err
	}
	switch state {
	case "ready", "drain", "maint":
	default:
		return fmt.Errorf("haproxy: invalid server state %q; use ready, drain or maint", state)
	}
	return c.expectEmpty(ctx, "set server "+ref+" state "+state)
}

// Toggle runs "enable TARGET" or "disable TARGET" on a server, where
// target is server, health or agent.
func (c *RuntimeAPI) Toggle(ctx context.Context, enable bool, target, backend, server string) error {
	ref, err := serverRef(backend, server)
	if err != nil {
		return err
	}
	switch target {
	case "server", "health", "agent":
	default:
		return fmt.Errorf("haproxy: invalid toggle target %q; use server, health or agent", target)
	}
	verb := "disable"
	if enable {
		verb = "enable"
	}
	return c.expectEmpty(ctx, verb+" "+target+" "+ref)
}

// ServerNames returns the names of a backend's servers, from "show servers
// state".
func (c *RuntimeAPI) ServerNames(ctx context.Context, backend string) ([]string, error) {
	if backend == "" || strings.ContainsAny(backend, unsafeCommandChars) {
		return nil, fmt.Errorf("haproxy: invalid backend %q", backend)
	}
	cmd := "show servers state " + backend
	out, err := c.Exec(ctx, cmd)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(out, "\n")
	// The first line is the format version, "1" in HAProxy 2.6, followed by
	// a "#" header of the columns be_id be_name srv_id srv_name ...
	if len(lines) == 0 || lines[0] != "1" {
		return nil, &CommandError{Command: cmd, Response: out}
	}
	var names []string
	for _, line := range lines[1:] {
		fields := strings.Fields(line)
		if len(fields) < 4 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		names = append(names, fields[3])
	}
	return names, nil
}

// IsCommandError reports whether err is a response of HAProxy that rejects
// the command, as opposed to a failure to reach the socket.
func IsCommandError(err error) bool {
	var ce *CommandError
	return errors.As(err, &ce)
}
