package config

import (
	"net/netip"
	"testing"
)

func TestTargetPolicy(t *testing.T) {
	def := DefaultTargetPolicy()
	c, err := LoadFile("testdata/policy-good.yml")
	if err != nil {
		t.Fatal(err)
	}
	strict := c.TargetPolicy
	tests := []struct {
		name   string
		policy TargetPolicy
		addr   string
		ok     bool
	}{
		{"default allows loopback", def, "127.0.0.1", true},
		{"default allows private LAN", def, "192.168.1.1", true},
		{"default denies metadata", def, "169.254.169.254", false},
		{"default denies v6 link-local", def, "fe80::1", false},
		{"default denies EC2 v6 metadata", def, "fd00:ec2::254", false},
		{"default denies v4-mapped metadata", def, "::ffff:169.254.169.254", false},
		{"allow list admits", strict, "127.0.0.5", true},
		{"deny beats allow", strict, "127.0.0.2", false},
		{"outside allow list", strict, "192.0.2.1", false},
		{"v6 allow single", strict, "::1", true},
	}
	for _, tc := range tests {
		err := tc.policy.CheckAddr(netip.MustParseAddr(tc.addr))
		if (err == nil) != tc.ok {
			t.Errorf("%s: CheckAddr(%s) = %v, want ok=%v", tc.name, tc.addr, err, tc.ok)
		}
	}
	if err := strict.CheckHost("db.internal"); err == nil {
		t.Error("deny_hosts glob not applied")
	}
	if err := strict.CheckHost("DB.Internal."); err == nil {
		t.Error("host matching must ignore case and a trailing dot")
	}
	if err := strict.CheckHost("example.com"); err != nil {
		t.Errorf("host not denied should pass: %v", err)
	}
}
