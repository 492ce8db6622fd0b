package netlab

import "fmt"

// AutoRoute installs, in every namespace node, a host route (/32 and /128)
// to every lab address it does not share a link with, via the first hop of
// a shortest path (fewest links; ties go to the earliest-created link) to the
// node owning the address. The client is never a transit hop. It uses
// `ip route replace`, so it can be called again after adding links. Nodes
// get no default route: destinations outside the lab are unreachable.
func (l *Lab) AutoRoute() {
	l.t.Helper()
	links := l.Links()
	for _, n := range l.Nodes() {
		first := l.firstHops(n)
		var cmds []string
		for _, lk := range links {
			if lk.On(n) != nil {
				continue // connected
			}
			for _, dst := range []*End{lk.A, lk.B} {
				h, ok := first[dst.Node]
				if !ok || h.via == nil {
					continue // unreachable from n, or n itself
				}
				peer := h.via.Peer()
				cmds = append(cmds,
					fmt.Sprintf("route replace %s/32 via %s dev %s", dst.IPv4, peer.IPv4, h.via.Name),
					fmt.Sprintf("route replace %s/128 via %s dev %s", dst.IPv6, peer.IPv6, h.via.Name))
			}
		}
		if len(cmds) > 0 {
			l.must(n.ipBatch(cmds...))
		}
	}
}

type hop struct {
	via  *End // n's own end the path leaves through
	dist int
}

// firstHops runs a breadth-first search from n and returns, for every
// reachable node, n's end on the path's first link and the path length.
func (l *Lab) firstHops(n *Node) map[*Node]hop {
	res := map[*Node]hop{n: {dist: 0}}
	queue := []*Node{n}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur.IsClient() && cur != n {
			continue // the client is a host, never a transit hop
		}
		for _, e := range cur.Ends() {
			next := e.Peer().Node
			if _, seen := res[next]; seen {
				continue
			}
			h := hop{via: res[cur].via, dist: res[cur].dist + 1}
			if cur == n {
				h.via = e
			}
			res[next] = h
			queue = append(queue, next)
		}
	}
	return res
}
