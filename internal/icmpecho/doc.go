// Package icmpecho is the process's ICMP echo engine: every echo request
// the icmp prober (and through it the isp prober, the diagnosis and the
// throughput prober's latency samples) sends goes through it.
//
// One engine per network namespace holds one socket per IP version and
// mode (raw, or datagram "ping" sockets), plus one per don't-fragment or
// source-address variant in use. A single goroutine per receiving socket
// reads replies in batches (recvmmsg) and hands each to its probe; a
// single scheduler goroutine sends every request at its planned time, so a
// probe costs a table entry, not a socket and a reader, and its caller's
// goroutine only if it Waits; a single deadline goroutine ends the probes
// waiting with OnDone (no goroutine of their own) at their StopAt or
// ReplyTimeout (a heap entry each, not a runtime timer). The engine starts
// with the first probe and stops with the last.
//
// Sockets. They are blocking sockets outside Go's network poller: on
// loopback a reply arrives during every sendmsg, and a polled socket would
// wake an idle runtime thread out of epoll_wait for each (one epoll_pwait
// per echo, measured). Sends and reads are non-blocking raw system calls;
// the receive loop waits in ppoll between batches, reads with recvmmsg, and
// pauses 1 ms after a short batch. A probe that gives up first drains the
// queue, so a reply the kernel got in time is never lost to the pause.
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
// Go scheduler's delay enters it. Nothing but a few stores lies between the
// clock read and the system call: in particular no unlock, which under load
// can hand the processor to a waiting goroutine (that cost a few requests
// tens of milliseconds each when it was there).
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
//   - IP_TTL / IPV6_UNICAST_HOPS of 64 on every socket, and another TTL per
//     request as a control message; IP_RECVTTL /
//     IPV6_RECVHOPLIMIT for the replies' hop limit (raw IPv4 reads it from
//     the IP header);
//   - IP_MTU_DISCOVER / IPV6_MTU_DISCOVER and IPV6_DONTFRAG for
//     dont_fragment.
//
// SO_TIMESTAMPING's transmit timestamps (on the error queue) work too, on
// both kinds of socket, and were tried: through /probe they cost 1.5-3 µs
// of CPU per echo (about a tenth), and moved the mean loopback RTT from
// fping's (6 µs, clock before sendto) to 3 µs. Only a thread preempted in
// the few instructions between the clock read and sendmsg would make them
// matter, so they are not used.
//
// Datagram sockets are not asked for ICMP errors (IP_RECVERR), so there an
// unreachable target is only silence.
package icmpecho
