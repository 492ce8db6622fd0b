#!/usr/bin/env bash
# hermetic.sh CMD [ARG...]: run CMD in a network namespace from which nothing can leave, and fail if
# anything tried to.
#
# The namespace has loopback and one veth link. Its default routes (IPv4 and IPv6) lead over that
# link into a second namespace, the sink, which forwards nothing: tcpdump records every packet that
# arrives there, and the kernel drops it. CMD may build namespaces and labs of its own inside as
# usual. /etc/resolv.conf is the host's, so a lookup through the system resolver shows up as a packet
# that tried to leave. ARP and IPv6 neighbour/router discovery on the link itself are not counted.
#
# At the end it lists the packets that reached the sink and exits 1 if there were any (or CMD's
# status if CMD failed), else CMD's status. Needs root, iproute2 and tcpdump. Go builds inside get
# GOPROXY=off: run `go mod download` first.
#
#   go mod download && scripts/hermetic.sh go test ./...
set -uo pipefail

if [[ $# -eq 0 ]]; then
  sed -n '2,14s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
[[ $(id -u) -eq 0 ]] || { echo "hermetic: needs root to create network namespaces" >&2; exit 2; }
for tool in ip tcpdump; do
  command -v "$tool" >/dev/null || { echo "hermetic: $tool not found (apt-get install iproute2 tcpdump, or bash scripts/deps.sh)" >&2; exit 2; }
done

inner="hermetic-$$" sink="hermetic-sink-$$"
in_if="hmi$$" sink_if="hms$$" # interface names: at most 15 characters
pcap=$(mktemp --suffix=.pcap)
capture=
cleanup() {
  [[ -n $capture ]] && kill "$capture" 2>/dev/null && wait "$capture" 2>/dev/null
  ip netns del "$inner" 2>/dev/null
  ip netns del "$sink" 2>/dev/null # takes the veth pair with it
  rm -f "$pcap"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # until CMD runs

setup() {
  ip netns add "$inner" && ip netns add "$sink" &&
    ip -n "$inner" link set lo up &&
    ip link add "$in_if" netns "$inner" type veth peer name "$sink_if" netns "$sink" &&
    # 100.64.0.0/10 and fd00::/8 are neither the lab's documentation ranges nor loopback.
    ip -n "$inner" addr add 100.65.0.2/30 dev "$in_if" &&
    ip -n "$sink" addr add 100.65.0.1/30 dev "$sink_if" &&
    ip -n "$inner" addr add fd68:6572:6d::2/64 dev "$in_if" nodad &&
    ip -n "$sink" addr add fd68:6572:6d::1/64 dev "$sink_if" nodad &&
    ip -n "$inner" link set "$in_if" up && ip -n "$sink" link set "$sink_if" up &&
    ip -n "$inner" route add default via 100.65.0.1 dev "$in_if" &&
    ip -n "$inner" -6 route add default via fd68:6572:6d::1 dev "$in_if"
}
setup || { echo "hermetic: cannot set up the network namespaces" >&2; exit 2; }

# -Q in: only what arrives from the inner namespace; -U: write each packet at once.
ip netns exec "$sink" tcpdump -i "$sink_if" -Q in -n -U -w "$pcap" 2>/dev/null &
capture=$!
for _ in $(seq 50); do # the file header is written once the capture runs
  [[ $(stat -c %s "$pcap") -ge 24 ]] && break
  sleep 0.1
done
[[ $(stat -c %s "$pcap") -ge 24 ]] || { echo "hermetic: tcpdump did not start" >&2; exit 2; }

# CMD runs in the background only so that a signal can be passed on to it: the
# namespaces must outlive it, or it would go on in a namespace cut off from the
# sink (and its labs with it). Job control gives it a process group of its own
# (signalled as a whole, as a terminal would) and keeps SIGINT from being
# ignored, as bash does for background commands otherwise.
set -m
ip netns exec "$inner" env GOPROXY=off "$@" <&0 &
cmd=$!
set +m
trap 'kill -INT -- "-$cmd" 2>/dev/null' INT
trap 'kill -TERM -- "-$cmd" 2>/dev/null' TERM
while :; do
  wait "$cmd"
  rc=$?
  ((rc > 128)) || break
  # A signal cut wait short (or killed CMD): wait on while CMD runs, and take
  # its own status once it has ended.
  kill -0 "$cmd" 2>/dev/null && continue
  wait "$cmd" 2>/dev/null
  r=$?
  ((r == 127)) || rc=$r # 127: that status was the one already returned
  break
done
trap 'exit 130' INT TERM

sleep 0.5 # packets still in flight
kill -TERM "$capture" && wait "$capture" 2>/dev/null # tcpdump flushes and exits
capture=
left=$(tcpdump -n -r "$pcap" 2>/dev/null |
  grep -v -E ' ARP, |ICMP6, (neighbor|router) (solicitation|advertisement)|IP6 fe80::[^ ]* > ff02::|> ff02::(1|2|16|1:ff[0-9a-f:]*): ')
if [[ -n $left ]]; then
  echo "hermetic: $(wc -l <<<"$left") packet(s) tried to leave the namespace:" >&2
  head -50 <<<"$left" >&2
  exit $((rc ? rc : 1))
fi
echo "hermetic: no packet tried to leave the namespace (command exit status $rc)" >&2
exit "$rc"
