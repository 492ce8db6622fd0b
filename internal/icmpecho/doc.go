// Package icmpecho is the process's ICMP echo engine: every echo request
// the icmp prober (and through it the isp prober, the diagnosis and the
// throughput prober's latency samples) sends goes through it.
//
// One engine per network namespace holds one socket per IP version and
// mode (raw, or datagram "ping" sockets), plus one per don't-fragment or
// source-address variant in use. A single goroutine per receiving socket
// reads replies in batches (recvmmsg) and hands each to its probe; a
// single scheduler goroutine sends every request at its planned time, so a
// probe costs a table entry and a waiting goroutine, not a socket and a
// reader. The engine starts with the first probe and stops with the last.
//
// Matching. Every request's payload begins with a mark: this process's
// random magic number and the probe's token (its identifier and a random
// generation). A reply names its probe by the token, which works on both
// kinds of socket (a datagram socket's requests all carry the socket's
// identifier, which the kernel substitutes); its sequence number names the
// request and its source must be the probe's target (else it is counted
// foreign). Identifiers come from one allocator per process (IDs) that
// starts at a random value. ICMP errors (time exceeded, unreachable, too
// big) quote the request's header, so on raw sockets they reach their probe
// too. Replies to ended probes are counted late, repeated ones duplicates.
//
// Timing. A round-trip time runs from the clock read just before sendmsg
// (on loopback the reply arrives before sendmsg returns) to the kernel's
// receive timestamp (SO_TIMESTAMPNS), so neither the receive loop's nor the
// Go scheduler's delay enters it.
//
// What it uses of the kernel (checked on Linux 6.18; all of it exists since
// Linux 3.x, IP_TTL as a control message since 4.x):
//
//   - SO_TIMESTAMPNS on every receiving socket; where the kernel refuses it,
//     the receive loop reads the clock once per batch instead;
//   - SO_RXQ_OVFL, whose running drop count the engine reports
//     (Counters.QueueDrops); without it drops go uncounted;
//   - SO_RCVBUFFORCE to 32 MiB with CAP_NET_ADMIN, else SO_RCVBUF (capped at
//     twice net.core.rmem_max); the pacer (see scheduler) sizes bursts to
//     what was granted;
//   - on raw sockets, ICMP_FILTER / ICMPV6_FILTER (only echo replies and
//     errors are copied to the socket at all) and a BPF program
//     (SO_ATTACH_FILTER) that drops echo replies without this process's
//     magic, so other pingers on the host cost the engine nothing; raw
//     sockets other than the receiving one block everything;
//   - IP_TTL / IPV6_HOPLIMIT per request as a control message, IP_RECVTTL /
//     IPV6_RECVHOPLIMIT for the replies' hop limit (raw IPv4 reads it from
//     the IP header);
//   - IP_MTU_DISCOVER / IPV6_MTU_DISCOVER and IPV6_DONTFRAG for
//     dont_fragment.
//
// SO_TIMESTAMPING's transmit timestamps (on the error queue) work too but
// are not used: they would cost a second read per request, and the clock
// read just before sendmsg is close to them (on loopback, Linux 6.18, 2,000
// requests: 4.7 µs earlier at the median, 19 µs at the 99th percentile).
// What they would remove is the rare request whose thread is preempted
// between the clock read and the send (one in 2,000 on a loaded machine,
// by 6 ms): that RTT comes out long, as it would with ping or fping.
// Datagram sockets are not asked for ICMP errors (IP_RECVERR), so there an
// unreachable target is only silence.
package icmpecho
