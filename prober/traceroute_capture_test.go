package prober

import (
	"encoding/binary"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/isp-checker/isp-checker/internal/icmpwire"
	"github.com/isp-checker/isp-checker/internal/netlab"
)

// traceCapture records the IP packets a lab node receives, with an
// AF_PACKET socket opened inside the node (netlab has no capture helper;
// tcpdump is not installed on every machine).
type traceCapture struct {
	fd   int
	mu   sync.Mutex
	pkts [][]byte
	stop chan struct{}
	done chan struct{}
}

func startTraceCapture(t *testing.T, n *netlab.Node) *traceCapture {
	t.Helper()
	c := &traceCapture{stop: make(chan struct{}), done: make(chan struct{})}
	err := n.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		c.fd = fd
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000})
	})
	if err != nil {
		t.Fatalf("capture socket in %s: %v", n, err)
	}
	go func() {
		defer close(c.done)
		buf := make([]byte, 65536)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			nr, from, err := unix.Recvfrom(c.fd, buf, 0)
			if err != nil {
				continue // timeout: check stop
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			c.mu.Lock()
			c.pkts = append(c.pkts, append([]byte(nil), buf[:nr]...))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.close() })
	return c
}

func (c *traceCapture) close() [][]byte {
	select {
	case <-c.stop:
	default:
		close(c.stop)
		<-c.done
		_ = unix.Close(c.fd)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pkts
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// traceFlow is what load balancers hash (the flow) and what identifies the
// probe, read from a captured packet.
type traceFlow struct {
	flow string // addresses, protocol, ports / ICMP type+code+checksum+id, IPv6 flow label
	key  uint32 // the per-probe field: ICMP sequence, UDP checksum, TCP sequence
}

// parseTraceFlow reads a probe of protocol proto (1, 6, 17, 58) from the
// client; ok is false for any other packet.
func parseTraceFlow(b []byte, proto int) (traceFlow, bool) {
	if len(b) < 40 {
		return traceFlow{}, false
	}
	var l4 []byte
	var f []byte
	switch b[0] >> 4 {
	case 4:
		ihl := int(b[0]&0xf) * 4
		if int(b[9]) != proto || len(b) < ihl+8 {
			return traceFlow{}, false
		}
		f = append(f, b[12:20]...)                                           // addresses
		f = append(f, b[1], b[9])                                            // TOS, protocol
		f = binary.BigEndian.AppendUint16(f, binary.BigEndian.Uint16(b[2:])) // length
		l4 = b[ihl:]
	case 6:
		if int(b[6]) != proto || len(b) < 48 {
			return traceFlow{}, false
		}
		f = append(f, b[0:4]...)  // version, traffic class, flow label
		f = append(f, b[4:7]...)  // payload length, next header
		f = append(f, b[8:40]...) // addresses
		l4 = b[40:]
	default:
		return traceFlow{}, false
	}
	var key uint32
	switch proto {
	case protoICMP, protoICMPv6:
		if l4[0] != icmpwire.ICMP4Echo && l4[0] != icmpwire.ICMP6Echo {
			return traceFlow{}, false
		}
		f = append(f, l4[0:6]...) // type, code, checksum, identifier
		key = uint32(binary.BigEndian.Uint16(l4[6:]))
	case protoUDP:
		f = append(f, l4[0:6]...) // ports, length
		key = uint32(binary.BigEndian.Uint16(l4[6:]))
	case protoTCP:
		f = append(f, l4[0:4]...) // ports
		key = binary.BigEndian.Uint32(l4[4:])
	}
	return traceFlow{flow: string(f), key: key}, true
}

// checkParisFlow asserts that the probes of one trace the destination
// received all belong to one flow and are told apart by their key.
func checkParisFlow(t *testing.T, pkts [][]byte, proto int, wantAtLeast int) {
	t.Helper()
	var flows []traceFlow
	for _, p := range pkts {
		if f, ok := parseTraceFlow(p, proto); ok {
			flows = append(flows, f)
		}
	}
	if len(flows) < wantAtLeast {
		t.Fatalf("captured %d probes (of %d packets), want at least %d", len(flows), len(pkts), wantAtLeast)
	}
	keys := map[uint32]bool{}
	for _, f := range flows {
		if f.flow != flows[0].flow {
			t.Errorf("two flows in one trace:\n% x\n% x", flows[0].flow, f.flow)
		}
		if keys[f.key] {
			t.Errorf("key %#x used twice", f.key)
		}
		keys[f.key] = true
	}
	t.Logf("%d probes at the destination, one flow, %d distinct keys", len(flows), len(keys))
}
