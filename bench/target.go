package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// reservedFiles is how many open files the bench keeps for itself besides
// the business and mobile connections: lookups of undelivered messages,
// pipes to child processes, standard streams and output files.
const reservedFiles = 256

// target is the HTTP endpoint under load: a node, a load balancer in front
// of nodes, or the baseline server.
type target struct {
	base   *url.URL
	host   string // host[:port] of the URL, sent as the Host header
	addr   string // loopback ip:port that the business clients connect to
	ip     net.IP
	apiKey string
}

// resolveTarget parses an http URL and resolves its host. It rejects any
// host that is not a loopback address, so the bench loads only this machine.
func resolveTarget(ctx context.Context, raw, apiKey string) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("target %q must be an http:// URL with a host", raw)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, u.Hostname())
	if err != nil {
		return nil, fmt.Errorf("resolve target host %s: %w", u.Hostname(), err)
	}
	var ip net.IP
	for _, a := range ips {
		if !a.IP.IsLoopback() {
			return nil, fmt.Errorf("target host %s resolves to %s, which is not a loopback address; "+
				"the bench loads only servers on this machine", u.Hostname(), a.IP)
		}
		if ip == nil || (ip.To4() == nil && a.IP.To4() != nil) {
			ip = a.IP // prefer IPv4, which has more than one loopback address
		}
	}
	if ip == nil {
		return nil, fmt.Errorf("target host %s has no address", u.Hostname())
	}
	return &target{base: u, host: u.Host, addr: net.JoinHostPort(ip.String(), port), ip: ip, apiKey: apiKey}, nil
}

// path returns p under the target URL's path.
func (t *target) path(p string) string {
	return strings.TrimSuffix(t.base.Path, "/") + p
}

// url returns the absolute URL of p on the target.
func (t *target) url(p string) string {
	return t.base.Scheme + "://" + t.host + t.path(p)
}

// sourceAddrs returns the local addresses that the business connections
// bind to, or nil to let the system choose. Linux gives a bound socket a
// port that is unique for its source address, so one address carries at
// most the ephemeral port range. requested is --sources: 0 uses as many
// addresses as half the range per address needs, which leaves room for
// sockets in TIME_WAIT from earlier runs.
func sourceAddrs(t *target, clients, requested int) ([]*net.TCPAddr, error) {
	n := requested
	if n == 0 {
		perAddress := ephemeralPorts() / 2
		if clients <= perAddress {
			return nil, nil
		}
		n = (clients + perAddress - 1) / perAddress
	}
	ip4 := t.ip.To4()
	if ip4 == nil || ip4[0] != 127 {
		return nil, fmt.Errorf("spreading %d connections over %d source addresses needs an IPv4 "+
			"loopback target such as 127.0.0.1, not %s", clients, n, t.ip)
	}
	if n > 250 {
		return nil, fmt.Errorf("%d source addresses is more than the 250 that 127.0.0.2 to 127.0.0.251 offer", n)
	}
	addrs := make([]*net.TCPAddr, n)
	for i := range addrs {
		addrs[i] = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}
	}
	return addrs, nil
}

// ephemeralPorts returns the size of the system's ephemeral port range, or
// the Linux default's size when the range cannot be read.
func ephemeralPorts() int {
	const linuxDefault = 60999 - 32768 + 1
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return linuxDefault
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || hi < lo {
		return linuxDefault
	}
	return hi - lo + 1
}

// checkFileLimit returns an error when the business and mobile connections
// would not fit in this process's open file limit. Each connection is one
// open file. The node or baseline server is a separate process with its own
// limit.
func checkFileLimit(clients, users int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open file limit: %w", err)
	}
	need := uint64(clients) + uint64(users) + reservedFiles
	if need > lim.Cur {
		return fmt.Errorf("--clients %d and --users %d need about %d open files, above this "+
			"process's limit of %d; lower --clients or --users", clients, users, need, lim.Cur)
	}
	return nil
}
