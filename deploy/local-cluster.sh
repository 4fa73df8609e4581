#!/usr/bin/env bash
# Starts N relay nodes on loopback with HAProxy in front of them, for
# development and tests. See "Running a cluster" in README.md.
#
# Usage: deploy/local-cluster.sh N [--config FILE] [--dir DIR] [--bin FILE]
#
# The first URL line of the output is "front: http://127.0.0.1:PORT". The
# script runs until SIGINT or SIGTERM, or until a node or HAProxy exits,
# and then stops every process it started.
set -euo pipefail

readonly usage="Usage: deploy/local-cluster.sh N [--config FILE] [--dir DIR] [--bin FILE]

Starts N relay nodes (1 to 32) on 127.0.0.1, each with its own data folder,
and HAProxy in front of them with deploy/haproxy.cfg.

  --config FILE  YAML merged under each node's own keys (listen addresses,
                 data folder, cluster membership); default: the embedded
                 defaults. A cluster.secret, auth.jwt.hs256_secret and API
                 client are generated when FILE has none.
  --dir DIR      folder for configs, data and logs, kept on exit; default: a
                 new temporary folder, deleted on exit
  --bin FILE     relay binary to run; default: built with go build

Stop with Ctrl-C or SIGTERM: the nodes and HAProxy get SIGTERM, and
whatever still runs 8 seconds later gets SIGKILL."

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly repo

die() {
	echo "local-cluster: $*" >&2
	exit 1
}

say() {
	echo "local-cluster: $*" >&2
}

# --- Arguments --------------------------------------------------------------

count=""
base_config=""
work=""
bin=""
while (($# > 0)); do
	case "$1" in
	--config)
		(($# >= 2)) || die "--config needs a file"
		base_config=$2
		shift 2
		;;
	--dir)
		(($# >= 2)) || die "--dir needs a folder"
		work=$2
		shift 2
		;;
	--bin)
		(($# >= 2)) || die "--bin needs a file"
		bin=$2
		shift 2
		;;
	-h | --help)
		echo "$usage"
		exit 0
		;;
	-*)
		die "unknown option $1; see --help"
		;;
	*)
		[[ -z $count ]] || die "unexpected argument $1; see --help"
		count=$1
		shift
		;;
	esac
done
[[ -n $count ]] || die "missing the number of nodes; see --help"
if ! [[ $count =~ ^[1-9][0-9]*$ ]] || ((count > 32)); then
	die "invalid number of nodes $count; give 1 to 32"
fi
if [[ -n $base_config ]]; then
	[[ -f $base_config ]] || die "config file $base_config not found"
	base_config=$(cd "$(dirname "$base_config")" && pwd)/$(basename "$base_config")
fi

for tool in haproxy go curl sha256sum; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool not found on PATH; install it (HAProxy: the Debian package haproxy)"
done

remove_work=false
if [[ -z $work ]]; then
	work=$(mktemp -d "${TMPDIR:-/tmp}/esh3artech-cluster.XXXXXX")
	remove_work=true
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)

# --- Process control ---------------------------------------------------------

pids=()  # every child: the nodes, then HAProxy
names=() # the name of each child, by index in pids

# stop_all sends SIGTERM to every child, gives them 8 seconds to drain
# (a node waits for requests in progress and hands its inboxes over), and
# sends SIGKILL to the rest, so that everything stops within 10 seconds.
stop_all() {
	local pid i alive
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for ((i = 0; i < 80; i++)); do
		alive=false
		for pid in "${pids[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then
				alive=true
			fi
		done
		$alive || break
		sleep 0.1
	done
	for ((i = 0; i < ${#pids[@]}; i++)); do
		if kill -0 "${pids[i]}" 2>/dev/null; then
			say "${names[i]} (pid ${pids[i]}) did not stop within 8s; sending SIGKILL"
			kill -KILL "${pids[i]}" 2>/dev/null || true
		fi
	done
	wait 2>/dev/null || true
	pids=()
}

on_exit() {
	local status=$?
	# A second Ctrl-C must not cut the stop short and leave children behind.
	# The stop itself ends within 10 seconds.
	trap '' INT TERM
	stop_all
	if $remove_work; then
		rm -rf "$work"
	fi
	exit "$status"
}

on_signal() {
	say "stopping"
	exit 0
}

trap on_exit EXIT
trap on_signal INT TERM

# --- Free ports ---------------------------------------------------------------

# used_ports lists the local ports of every TCP and UDP socket, from
# /proc/net, in decimal. awk converts the hex itself because mawk, Debian's
# default awk, has no strtonum.
used_ports() {
	local files=() file
	for file in /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6; do
		if [[ -r $file ]]; then
			files+=("$file")
		fi
	done
	((${#files[@]} > 0)) || return 0
	cat "${files[@]}" | awk '
		$2 ~ /:[0-9A-Fa-f]+$/ {
			hex = toupper(substr($2, index($2, ":") + 1))
			port = 0
			for (i = 1; i <= length(hex); i++) {
				port = port * 16 + index("0123456789ABCDEF", substr(hex, i, 1)) - 1
			}
			print port
		}'
}

declare -A taken=()
while read -r port; do
	taken[$port]=1
done < <(used_ports)

# Ports are drawn below the kernel's ephemeral range, so that outgoing
# connections do not take them between the check and the node's bind.
read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range
port_low=10000
port_high=$ephemeral_low
if ((port_high - port_low < 1000)); then
	port_low=1024
fi

# free_port prints a port that no socket uses and that no earlier call
# returned. Another process may still take it before the node binds it. The
# node then fails to start, and the script shows the end of its log.
free_port() {
	local i port
	for ((i = 0; i < 1000; i++)); do
		port=$((port_low + (RANDOM * 32768 + RANDOM) % (port_high - port_low)))
		if [[ -z ${taken[$port]:-} ]]; then
			taken[$port]=1
			echo "$port"
			return 0
		fi
	done
	die "no free port found between $port_low and $port_high after 1000 tries"
}

# --- Binaries ------------------------------------------------------------------

if [[ -z $bin ]]; then
	bin=$work/esh3artech
	say "building the relay into $bin"
	(cd "$repo" && go build -o "$bin" .) || die "go build failed"
fi
[[ -f $bin && -x $bin ]] || die "relay binary $bin is not an executable file"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# confmerge merges YAML files with the same rule as the relay's --config
# (maps merge key by key, any other value replaces), and reports whether a
# key is set. It is built inside the module for its YAML package.
confmerge_dir=$work/.confmerge
mkdir -p "$confmerge_dir"
cat >"$confmerge_dir/main.go" <<'GO'
// Command confmerge merges the relay's YAML configuration files for
// deploy/local-cluster.sh.
//
//	confmerge merge BASE OVERLAY   print BASE with OVERLAY merged over it
//	confmerge has FILE KEY         exit 0 if the dotted KEY is set and not empty
package main

import (
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "confmerge:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 3 && args[0] == "merge":
		base, err := load(args[1])
		if err != nil {
			return err
		}
		overlay, err := load(args[2])
		if err != nil {
			return err
		}
		merge(base, overlay)
		return yaml.NewEncoder(os.Stdout).Encode(base)
	case len(args) == 3 && args[0] == "has":
		tree, err := load(args[1])
		if err != nil {
			return err
		}
		if !has(tree, strings.Split(args[2], ".")) {
			os.Exit(1)
		}
		return nil
	}
	return fmt.Errorf("usage: confmerge merge BASE OVERLAY | confmerge has FILE KEY")
}

func load(path string) (map[string]any, error) {
	tree := map[string]any{}
	if path == "" {
		return tree, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(b, &tree); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if tree == nil {
		tree = map[string]any{}
	}
	return tree, nil
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		sm, sok := v.(map[string]any)
		dm, dok := dst[k].(map[string]any)
		if sok && dok {
			merge(dm, sm)
			continue
		}
		dst[k] = v
	}
}

func has(tree map[string]any, path []string) bool {
	var v any = tree
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		v = m[k]
	}
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}
GO
confmerge=$confmerge_dir/confmerge
(cd "$repo" && go build -o "$confmerge" "$confmerge_dir/main.go") ||
	die "building the configuration merger failed"

# --- Configuration -------------------------------------------------------------

# random_hex prints 2*N random hex digits.
random_hex() {
	od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

# Generated secrets are kept in the work folder, so that a cluster started
# again with the same --dir keeps its keys and tokens.
generated=$work/generated.env
if [[ -f $generated ]]; then
	# shellcheck source=/dev/null
	source "$generated"
fi
: "${gen_cluster_secret:=$(random_hex 32)}"
: "${gen_jwt_secret:=$(random_hex 32)}"
: "${gen_api_key:=$(random_hex 24)}"
umask 077
cat >"$generated" <<EOF
gen_cluster_secret=$gen_cluster_secret
gen_jwt_secret=$gen_jwt_secret
gen_api_key=$gen_api_key
EOF

# sets_key reports whether FILE (if any) sets a key to a value that is not
# empty.
sets_key() {
	local status=0
	[[ -n $base_config ]] || return 1
	"$confmerge" has "$base_config" "$1" || status=$?
	((status < 2)) || die "reading $base_config failed"
	return "$status"
}

generated_yaml=""
generated_cluster=false
if ! sets_key cluster.secret; then
	generated_cluster=true
fi
if ! sets_key auth.jwt.hs256_secret; then
	generated_yaml+="  jwt:
    hs256_secret: \"$gen_jwt_secret\"
"
fi
generated_client=false
if ! sets_key auth.clients; then
	generated_client=true
	api_key_sha256=$(printf '%s' "$gen_api_key" | sha256sum | cut -d' ' -f1)
	generated_yaml+="  clients:
    - id: local
      api_key_sha256: \"$api_key_sha256\"
      admin: true
"
fi

http_ports=()
agent_ports=()
gossip_ports=()
peer_ports=()
for ((i = 1; i <= count; i++)); do
	http_ports+=("$(free_port)")
	agent_ports+=("$(free_port)")
	gossip_ports+=("$(free_port)")
	peer_ports+=("$(free_port)")
done
front_port=$(free_port)
seed=127.0.0.1:${gossip_ports[0]}

# write_node_config writes node I's overlay and merges it over FILE.
write_node_config() {
	local i=$1 dir=$work/n$1 seeds="[\"$seed\"]"
	if ((i == 1)); then
		seeds="[]"
	fi
	mkdir -p "$dir/data"
	{
		echo "http:"
		echo "  listen: \"127.0.0.1:${http_ports[i - 1]}\""
		echo "storage:"
		echo "  dir: \"$dir/data\""
		echo "health:"
		echo "  agent_listen: \"127.0.0.1:${agent_ports[i - 1]}\""
		echo "cluster:"
		echo "  node_id: \"n$i\""
		echo "  gossip_listen: \"127.0.0.1:${gossip_ports[i - 1]}\""
		echo "  peer_listen: \"127.0.0.1:${peer_ports[i - 1]}\""
		echo "  seeds: $seeds"
		if $generated_cluster; then
			echo "  secret: \"$gen_cluster_secret\""
		fi
		if [[ -n $generated_yaml ]]; then
			echo "auth:"
			printf '%s' "$generated_yaml"
		fi
	} >"$dir/overlay.yaml"
	{
		echo "# Written by deploy/local-cluster.sh: ${base_config:-the embedded defaults}"
		echo "# with the keys of node n$i merged over it."
		"$confmerge" merge "$base_config" "$dir/overlay.yaml"
	} >"$dir/config.yaml" || die "merging the configuration of node n$i failed"
}

for ((i = 1; i <= count; i++)); do
	write_node_config "$i"
done

# The HAProxy configuration: deploy/haproxy.cfg with one server line per
# node in place of each "# @servers@" line.
server_lines=""
for ((i = 1; i <= count; i++)); do
	server_lines+="server n$i 127.0.0.1:${http_ports[i - 1]} agent-port ${agent_ports[i - 1]}"$'\n'
done
haproxy_cfg=$work/haproxy.cfg
stats_socket=$work/haproxy.sock
awk -v servers="$server_lines" '
	/^[[:space:]]*# @servers@[[:space:]]*$/ {
		indent = $0
		sub(/#.*/, "", indent)
		n = split(servers, lines, "\n")
		for (j = 1; j <= n; j++) {
			if (lines[j] != "") print indent lines[j]
		}
		next
	}
	{ print }
' "$repo/deploy/haproxy.cfg" >"$haproxy_cfg"
export RELAY_FRONT_BIND=127.0.0.1:$front_port RELAY_STATS_SOCKET=$stats_socket
if ! check=$(haproxy -c -f "$haproxy_cfg" 2>&1); then
	echo "$check" >&2
	die "HAProxy rejected $haproxy_cfg"
fi

# --- Start ------------------------------------------------------------------------

# spawn runs a command in the background in its own process group: job
# control is on only while it starts, so the SIGINT of Ctrl-C reaches only
# this script, which then stops the children in order.
spawn() {
	local name=$1 log=$2
	shift 2
	set -m
	"$@" >"$log" 2>&1 &
	set +m
	pids+=("$!")
	names+=("$name")
}

# run_node is the command of a node: it runs in the node's folder.
run_node() {
	cd "$work/n$1" && exec "$bin" serve --config "$work/n$1/config.yaml"
}

# report_exit explains why child I is gone and shows the end of its log.
report_exit() {
	local i=$1 log
	if ((i < count)); then
		log=$work/n$((i + 1))/node.log
	else
		log=$work/haproxy.log
	fi
	say "${names[i]} (pid ${pids[i]}) exited; the end of $log:"
	tail -n 20 "$log" >&2 || true
}

# wait_ready polls URL until it returns status 200, for at most 60
# seconds, and fails when a child exits in the meantime.
wait_ready() {
	local url=$1 what=$2 attempt i
	for ((attempt = 0; attempt < 600; attempt++)); do
		if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
			return 0
		fi
		for ((i = 0; i < ${#pids[@]}; i++)); do
			if ! kill -0 "${pids[i]}" 2>/dev/null; then
				report_exit "$i"
				die "$what did not start"
			fi
		done
		sleep 0.1
	done
	die "$what did not return status 200 for $url within 60s"
}

say "starting $count nodes in $work"
# The first node is every other node's seed, so it starts first.
spawn "node n1" "$work/n1/node.log" run_node 1
wait_ready "http://127.0.0.1:${http_ports[0]}/health/ready" "node n1"
for ((i = 2; i <= count; i++)); do
	spawn "node n$i" "$work/n$i/node.log" run_node "$i"
done
for ((i = 2; i <= count; i++)); do
	wait_ready "http://127.0.0.1:${http_ports[i - 1]}/health/ready" "node n$i"
done

spawn haproxy "$work/haproxy.log" haproxy -db -f "$haproxy_cfg"
wait_ready "http://127.0.0.1:$front_port/health/ready" "the front (HAProxy)"

# --- Report -----------------------------------------------------------------------

# The front is the first URL line, so that scripts can read it first.
echo "front: http://127.0.0.1:$front_port"
for ((i = 1; i <= count; i++)); do
	echo "node n$i: http://127.0.0.1:${http_ports[i - 1]} (pid ${pids[i - 1]}," \
		"agent 127.0.0.1:${agent_ports[i - 1]}, gossip 127.0.0.1:${gossip_ports[i - 1]}," \
		"peer 127.0.0.1:${peer_ports[i - 1]}, config $work/n$i/config.yaml)"
done
echo "haproxy: pid ${pids[count]}, runtime API socket $stats_socket, log $work/haproxy.log"
echo "data and logs: $work"
if $generated_client; then
	echo "api key: $gen_api_key"
else
	echo "api key: one of the keys of auth.clients in $base_config"
fi
echo "mobile token: $bin token --phone 775265496 --config $work/n1/config.yaml"
say "running; stop with Ctrl-C"

# --- Watch ------------------------------------------------------------------------

# wait -n returns when a child exits, or at once when a trapped signal
# arrives, whose handler then stops everything.
while true; do
	wait -n 2>/dev/null || true
	for ((i = 0; i < ${#pids[@]}; i++)); do
		if ! kill -0 "${pids[i]}" 2>/dev/null; then
			report_exit "$i"
			die "stopping the cluster because ${names[i]} exited"
		fi
	done
done
