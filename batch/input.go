// Package batch runs `isp-checker check`: it reads a list of URLs, validates,
// normalises and de-duplicates them, checks each with the http prober under
// bounded concurrency, and classifies the outcome as a person reading a
// website-status report expects (active, inactive, error).
package batch

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Limits bound what an input may hold, so a huge or hostile file fails with
// a clear message instead of eating memory.
type Limits struct {
	MaxBytes   int64 // whole input
	MaxURLs    int   // rows with a URL
	MaxLineLen int   // one line or CSV record
}

// DefaultLimits suit lists of up to a million URLs.
var DefaultLimits = Limits{MaxBytes: 256 << 20, MaxURLs: 1_000_000, MaxLineLen: 64 << 10}

// Row is one input line: the URL as written and any other CSV columns.
type Row struct {
	Line  int      // 1-based line (record) number in the input, for messages
	Raw   string   // the URL as written
	Extra []string // the other columns, in Input.ExtraHeader order
	// Invalid, when set, says why the row itself is malformed.
	Invalid string
}

// Input is a parsed list of URLs.
type Input struct {
	// ExtraHeader names the CSV columns other than url (nil for plain lists).
	ExtraHeader []string
	Rows        []Row
}

var bom = []byte("\xef\xbb\xbf")

// ReadInput parses a CSV with a `url` column (other columns are carried
// through) or a plain list with one URL per line. Blank lines and lines
// starting with # are ignored in plain lists. A UTF-8 BOM is accepted.
func ReadInput(r io.Reader, lim Limits) (*Input, error) {
	data, err := io.ReadAll(io.LimitReader(r, lim.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("input is larger than the limit of %d bytes", lim.MaxBytes)
	}
	data = bytes.TrimPrefix(data, bom)
	if !utf8.Valid(data) {
		return nil, errors.New("input is not valid UTF-8 text")
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if header, ok := csvHeader(string(first)); ok {
		return readCSV(data, header, lim)
	}
	if looksLikeHeader(string(first)) {
		return nil, fmt.Errorf("the first line %q looks like a CSV header without a url column: name the column with the URLs \"url\" (columns are separated by commas)", strings.TrimSpace(string(first)))
	}
	return readLines(data, lim)
}

// csvHeader reports whether line is a CSV header with a url column.
func csvHeader(line string) ([]string, bool) {
	line = strings.TrimRight(line, "\r")
	if !strings.Contains(line, ",") && !strings.EqualFold(strings.TrimSpace(line), "url") {
		return nil, false
	}
	rec, err := csv.NewReader(strings.NewReader(line)).Read()
	if err != nil {
		return nil, false
	}
	for _, f := range rec {
		if strings.EqualFold(strings.TrimSpace(f), "url") {
			return rec, true
		}
	}
	return nil, false
}

// looksLikeHeader: a first line with separators but nothing that could be
// a URL (no dot, no "://", no port) is a header, not a URL list.
func looksLikeHeader(line string) bool {
	line = strings.TrimSpace(line)
	if !strings.ContainsAny(line, ",;\t") {
		return false
	}
	return !strings.Contains(line, ".") && !strings.Contains(line, "://") && !strings.Contains(line, ":")
}

func readCSV(data []byte, header []string, lim Limits) (*Input, error) {
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	if _, err := cr.Read(); err != nil { // the header, already parsed
		return nil, fmt.Errorf("reading CSV header: %w", err)
	}
	urlCol := -1
	in := &Input{}
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if strings.EqualFold(h, "url") && urlCol < 0 {
			urlCol = i
			continue
		}
		if seen[h] {
			return nil, fmt.Errorf("CSV header repeats the column %q", h)
		}
		seen[h] = true
		in.ExtraHeader = append(in.ExtraHeader, h)
	}
	for _, h := range in.ExtraHeader {
		if reserved[strings.ToLower(h)] {
			return nil, fmt.Errorf("CSV column %q clashes with an output column; rename it", h)
		}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("CSV line %d: %w", pe.StartLine, pe.Err)
			}
			return nil, fmt.Errorf("reading CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		row := Row{Line: line}
		if len(rec) > len(header) {
			// Reported as that row's error, like any other malformed row.
			row.Invalid = fmt.Sprintf("CSV line %d has %d fields, the header has %d", line, len(rec), len(header))
			rec = rec[:len(header)]
		}
		for i := range header {
			v := ""
			if i < len(rec) {
				v = rec[i]
			}
			if len(v) > lim.MaxLineLen {
				return nil, fmt.Errorf("CSV line %d: a field is longer than %d bytes", line, lim.MaxLineLen)
			}
			if i == urlCol {
				row.Raw = strings.TrimSpace(v)
			} else {
				row.Extra = append(row.Extra, v)
			}
		}
		in.Rows = append(in.Rows, row)
		if len(in.Rows) > lim.MaxURLs {
			return nil, fmt.Errorf("input has more than the limit of %d URLs", lim.MaxURLs)
		}
	}
	return in, nil
}

func readLines(data []byte, lim Limits) (*Input, error) {
	in := &Input{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, min(4096, lim.MaxLineLen)), lim.MaxLineLen)
	n := 0
	for sc.Scan() {
		n++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		in.Rows = append(in.Rows, Row{Line: n, Raw: s})
		if len(in.Rows) > lim.MaxURLs {
			return nil, fmt.Errorf("input has more than the limit of %d URLs", lim.MaxURLs)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d is longer than %d bytes", n+1, lim.MaxLineLen)
		}
		return nil, fmt.Errorf("reading input: %w", err)
	}
	return in, nil
}
