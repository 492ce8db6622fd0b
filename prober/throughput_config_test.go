package prober

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
)

// The throughput module fixtures in config/testdata (checked here, next to
// the prober that uses them, so the config package's tests stay as they are).

func TestThroughputConfigGood(t *testing.T) {
	c, err := config.LoadFile(filepath.Join("..", "config", "testdata", "throughput-good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Modules["throughput_download"].Throughput
	if d.Direction != "download" || d.Duration != 5*time.Second || d.Connections != 4 || d.MaxBytes != 0 ||
		d.RampUp != time.Second || d.LatencyProtocol != "tcp" || d.LatencyInterval != 100*time.Millisecond ||
		d.IdleLatencySamples != 10 || !d.IPProtocolFallback || d.UploadRequestBytes != 256<<20 ||
		!d.HTTPClientConfig.FollowRedirects || !d.HTTPClientConfig.EnableHTTP2 {
		t.Errorf("defaults not applied: %+v", d)
	}
	u := c.Modules["throughput_upload"].Throughput
	if u.Direction != "upload" || u.Duration != 10*time.Second || u.Connections != 8 || u.MaxBytes != 200<<20 ||
		u.UploadRequestBytes != 32<<20 || u.RampUp != 2*time.Second || u.Method != "PUT" || u.Headers["X-Probe"] != "isp-checker" ||
		u.IPProtocol != "ip4" || u.IPProtocolFallback || u.SourceIPAddress != "192.0.2.10" || u.CongestionControl != "cubic" ||
		u.LatencyPort != 22 || u.LatencyInterval != 200*time.Millisecond || u.IdleLatencySamples != 20 ||
		u.HTTPClientConfig.BasicAuth == nil || !u.HTTPClientConfig.TLSConfig.InsecureSkipVerify {
		t.Errorf("options not applied: %+v", u)
	}
	if c.Modules["throughput_icmp_latency"].Throughput.LatencyProtocol != "icmp" {
		t.Error("latency_protocol icmp not applied")
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "password: secret") || !strings.Contains(string(out), "congestion_control: cubic") {
		t.Errorf("marshalled config shows the secret or lacks options:\n%s", out)
	}
}

func TestThroughputConfigBad(t *testing.T) {
	tests := []struct{ file, err string }{
		{"throughput-bad-direction.yml", `module "tp": throughput: direction "both" is not valid (download or upload)`},
		{"throughput-bad-ramp-up.yml", `module "tp": throughput: ramp_up 2s must be at least 0 and shorter than duration 2s`},
		{"throughput-bad-connections.yml", `module "tp": throughput: connections 100 is out of range 1-64`},
		{"throughput-bad-latency-protocol.yml", `module "tp": throughput: latency_protocol "udp" is not valid (tcp, icmp or none)`},
		{"throughput-bad-latency-port.yml", `module "tp": throughput: latency_port is only used with latency_protocol: tcp`},
		{"throughput-bad-interval.yml", `module "tp": throughput: latency_interval 1ms is below the minimum of 10ms`},
		{"throughput-bad-max-bytes.yml", `module "tp": throughput: max_bytes cannot be negative (0 means no cap)`},
		{"throughput-bad-unknown-field.yml", `module "tp": line 5: unknown field "streams" in throughput`},
		{"throughput-bad-congestion-control.yml", `module "tp": throughput: congestion_control "BBR v3" is not a congestion control name (like cubic or bbr)`},
		{"throughput-bad-auth.yml", `module "tp": throughput: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured`},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("..", "config", "testdata", tc.file)
			_, err := config.LoadFile(path)
			want := "parsing config file " + path + ": " + tc.err
			if err == nil || err.Error() != want {
				t.Errorf("error mismatch\n got: %v\nwant: %s", err, want)
			}
		})
	}
}

// Modules built in code start from config's defaults, which validate; a
// ramp_up of 0 is no ramp-up (the rate over the whole transfer), as
// written, not the default.
func TestThroughputOptionsDefaults(t *testing.T) {
	m := config.NewModule("throughput")
	if err := m.Check(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	if m.Throughput.RampUp != config.DefaultThroughputRampUp {
		t.Errorf("default ramp_up %s, want %s", m.Throughput.RampUp, config.DefaultThroughputRampUp)
	}
	none := probeTestModule(t, "throughput", 0, "duration: 1s\nramp_up: 0s")
	if none.Throughput.RampUp != 0 {
		t.Errorf("ramp_up: 0s with a 1s duration loads as %s, want 0", none.Throughput.RampUp)
	}
}
