package prober

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	pconfig "github.com/prometheus/common/config"

	"github.com/isp-checker/isp-checker/config"
)

// Dialogue is what a query_response dialogue reports; the tcp and unix
// results embed it.
type Dialogue struct {
	// TLSHandshakeSeconds sums the TLS handshakes (tls: true, starttls).
	TLSHandshakeSeconds float64 `json:"tls_handshake_seconds,omitempty"`
	// TLS describes the last TLS handshake, failed or not.
	TLS *TLSInfo `json:"tls,omitempty"`
	// FailedDueToRegex is true when an expect regexp matched no line.
	FailedDueToRegex bool `json:"failed_due_to_regex"`
	// FailedDueToBytes is true when the bytes that arrived differ from an
	// expect_bytes step's (not when the connection closed or timed out
	// before they all came: that is a read error).
	FailedDueToBytes bool `json:"failed_due_to_bytes"`
	// ExpectLabels are the query_response labels, expanded from the expect
	// regexps' submatches (probe_expect_info), once a step with labels
	// matched: every step's label names, "" for steps not reached. Labels
	// of later steps override earlier ones of the same name.
	ExpectLabels map[string]string `json:"expect_labels,omitempty"`
}

// maxLine is the longest line an expect step reads, as blackbox_exporter's
// line scanner (64 KiB): a server sending more without a newline fails the
// step instead of filling memory.
const maxLine = 64 * 1024

var errLineTooLong = errors.New("line longer than 64 KiB")

// dialogue runs the query_response steps of a tcp or unix probe on one
// connection. Lines and expected bytes are read through one buffered
// reader, so an expect_bytes step after an expect step sees the bytes that
// arrived with the matched line, and bytes split over several segments are
// waited for until the deadline.
type dialogue struct {
	steps     []config.QueryResponse
	tlsConfig *pconfig.TLSConfig
	// serverName is the TLS server name when tls_config sets none ("" for
	// unix, whose config must set one or skip verification).
	serverName string
	logger     *slog.Logger
	common     *Common
	out        *Dialogue
}

// handshake runs a TLS client handshake on conn and records what it saw,
// including the certificates of a server that failed verification.
func (d *dialogue) handshake(ctx context.Context, conn net.Conn) (*tls.Conn, error) {
	cfg, err := pconfig.NewTLSConfigWithContext(ctx, d.tlsConfig)
	if err != nil {
		d.common.Fail(d.logger, "Error creating TLS configuration", err)
		return nil, err
	}
	if cfg.ServerName == "" {
		cfg.ServerName = d.serverName
	}
	tc := tls.Client(conn, cfg)
	start := time.Now()
	err = tc.HandshakeContext(ctx)
	d.out.TLSHandshakeSeconds += time.Since(start).Seconds()
	state := tc.ConnectionState()
	d.out.TLS = NewTLSInfo(&state, err, cfg.ServerName)
	if err != nil {
		d.common.Fail(d.logger, "TLS handshake failed", err)
		return nil, err
	}
	d.logger.Info("TLS handshake succeeded", "version", d.out.TLS.Version, "cipher", d.out.TLS.Cipher)
	return tc, nil
}

// converse runs the dialogue on conn, just connected: within ctx's
// deadline, over TLS from the start when useTLS is set. It closes conn, or
// the TLS connection that replaced it.
func (d *dialogue) converse(ctx context.Context, conn net.Conn, useTLS bool) bool {
	defer func() { _ = conn.Close() }()
	// Nothing below may block past the probe's deadline.
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			d.common.Fail(d.logger, "Error setting deadline", err)
			return false
		}
	}
	if useTLS {
		tc, err := d.handshake(ctx, conn)
		if err != nil {
			return false
		}
		conn = tc
	}
	return d.run(ctx, &conn)
}

// run runs the steps. conn is replaced by the TLS connection after a
// starttls step; what the server sent before the upgrade and had not been
// read yet is dropped with the old reader, so nothing sent in clear can be
// taken for an answer inside TLS.
func (d *dialogue) run(ctx context.Context, conn *net.Conn) bool {
	r := bufio.NewReader(*conn)
	for i, qr := range d.steps {
		d.logger.Info("Processing query response entry", "entry_number", i)
		send := qr.Send
		switch {
		case qr.Expect.Regexp != nil:
			line, match, ok := d.expect(r, qr)
			if !ok {
				return false
			}
			// A binary send is sent byte for byte: "$1" in it is data.
			if !qr.SendBinary {
				send = string(qr.Expect.Expand(nil, []byte(send), line, match))
			}
			if len(qr.Labels) > 0 && d.out.ExpectLabels == nil {
				d.out.ExpectLabels = d.labelNames()
			}
			for _, l := range qr.Labels {
				d.out.ExpectLabels[l.Name] = string(qr.Expect.Expand(nil, []byte(l.Value), line, match))
			}
		case qr.ExpectBytes != "":
			if !d.expectBytes(r, []byte(qr.ExpectBytes)) {
				return false
			}
		}
		if send != "" && !d.send(*conn, send, qr.SendBinary) {
			return false
		}
		if qr.StartTLS {
			tc, err := d.handshake(ctx, *conn)
			if err != nil {
				return false
			}
			*conn = tc
			r = bufio.NewReader(tc)
		}
	}
	return true
}

// labelNames maps the label names of every step that can set them (those
// with expect) to "", so that probe_expect_info has the same label names
// however far the dialogue got (what blackbox's pending fix for its panic
// on labels in two steps does).
func (d *dialogue) labelNames() map[string]string {
	names := map[string]string{}
	for _, qr := range d.steps {
		if qr.Expect.Regexp != nil {
			for _, l := range qr.Labels {
				names[l.Name] = ""
			}
		}
	}
	return names
}

// expect reads lines until one matches the step's regexp; it returns the
// line and the submatch indexes.
func (d *dialogue) expect(r *bufio.Reader, qr config.QueryResponse) ([]byte, []int, bool) {
	for {
		line, err := readLine(r)
		if errors.Is(err, io.EOF) {
			d.out.FailedDueToRegex = true
			d.common.Fail(d.logger, fmt.Sprintf("Regexp %q did not match any line before the connection closed", qr.Expect.String()), nil)
			return nil, nil, false
		}
		if err != nil {
			d.common.Fail(d.logger, "Error reading from connection", err)
			return nil, nil, false
		}
		d.logger.Debug("Read line", "line", string(line))
		if match := qr.Expect.FindSubmatchIndex(line); match != nil {
			d.logger.Info("Regexp matched", "regexp", qr.Expect.String(), "line", string(line))
			return line, match, true
		}
	}
}

// expectBytes reads len(want) bytes, waiting for all of them until the
// deadline, and compares them with want. Bytes that already differ are a
// mismatch even when the rest never came.
func (d *dialogue) expectBytes(r *bufio.Reader, want []byte) bool {
	got := make([]byte, len(want))
	n, err := io.ReadFull(r, got)
	d.logger.Debug("Read bytes", "bytes", fmt.Sprintf("%q", got[:n]))
	if !bytes.Equal(got[:n], want[:n]) {
		d.out.FailedDueToBytes = true
		d.common.Fail(d.logger, fmt.Sprintf("Bytes did not match: got %q, want %q", got[:n], want), nil)
		return false
	}
	if err != nil {
		d.common.Fail(d.logger, fmt.Sprintf("Error reading from connection after %d of the %d expected bytes", n, len(want)), err)
		return false
	}
	d.logger.Info("Bytes matched", "bytes", fmt.Sprintf("%q", want))
	return true
}

// send writes a text line (with "\n") or binary bytes (as they are).
func (d *dialogue) send(conn net.Conn, send string, binary bool) bool {
	var err error
	if binary {
		d.logger.Debug("Sending bytes", "bytes", fmt.Sprintf("%q", send))
		_, err = io.WriteString(conn, send)
	} else {
		d.logger.Debug("Sending line", "line", send)
		_, err = io.WriteString(conn, send+"\n")
	}
	if err != nil {
		d.common.Fail(d.logger, "Failed to send", err)
		return false
	}
	return true
}

// readLine reads one line as bufio.ScanLines splits them (without "\n" or
// "\r\n"; a last line without a newline counts), at most maxLine bytes. The
// line is valid until the next read from r.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > maxLine+2 {
			return nil, errLineTooLong
		}
		if line == nil && !errors.Is(err, bufio.ErrBufferFull) {
			line = chunk
		} else {
			line = append(line, chunk...)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil:
			line = line[:len(line)-1]
		case errors.Is(err, io.EOF) && len(line) > 0:
		default:
			return nil, err
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) > maxLine {
			return nil, errLineTooLong
		}
		return line, nil
	}
}
