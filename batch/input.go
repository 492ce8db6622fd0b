// Package batch runs `isp-checker check`: it reads a list of URLs, validates,
// normalises and de-duplicates them, checks each with the http prober under
// bounded concurrency, and classifies the outcome as a person reading a
// website-status report expects (active, inactive, error).
package batch

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
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
	// Warnings say how an ambiguous input was read (a CSV without a header).
	Warnings []string
}

var bom = []byte("\xef\xbb\xbf")

// ReadInput parses a CSV with a `url` column (other columns are carried
// through) or a plain list with one URL per line. Blank lines and lines
// starting with # are ignored in plain lists. A UTF-8 BOM is accepted. A
// first line of one word with no URL in it ("website") is the header of a
// one-column CSV (headerWord).
//
// Only a problem with the input as a whole (too large, not UTF-8, a header
// it cannot use, too many URLs) is an error. A malformed row — bad quoting,
// too few or too many fields, an over-long field or line — is a Row with
// Invalid set, and reading goes on with the next line. A first line with
// commas that names no url column is read as a CSV without a header, with a
// warning in Input.Warnings.
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
	if headerWord(string(first)) {
		c := &csvLayout{width: 1, what: "the header"}
		return c.read(data, min(len(first)+1, len(data)), 1, lim)
	}
	if header, ok := csvHeader(string(first)); ok {
		layout, err := headerLayout(header)
		if err != nil {
			return nil, err
		}
		return layout.read(data, min(len(first)+1, len(data)), 1, lim)
	}
	if looksLikeHeader(string(first)) {
		return nil, fmt.Errorf("the first line %q looks like a CSV header without a url column: name the column with the URLs \"url\" (columns are separated by commas)", strings.TrimSpace(string(first)))
	}
	if rec, line, ok := headerlessRecord(data); ok {
		layout, warning := guessLayout(rec, line)
		in, err := layout.read(data, 0, 0, lim)
		if err != nil {
			return nil, err
		}
		in.Warnings = append(in.Warnings, warning)
		return in, nil
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

// headerWord: a first line of words alone (letters, digits, spaces, _ and
// -, starting with a letter: "website", "Domain", "web site") names the URL
// column, as "url" does. No URL looks so: one needs a dot, "://", a port or
// a slash (a one-label host on the first line is written http://name/).
func headerWord(line string) bool {
	line = strings.TrimSpace(line)
	if line == "" {
		return false
	}
	for i, r := range line {
		if !unicode.IsLetter(r) && (i == 0 || !unicode.IsDigit(r) && !strings.ContainsRune(" _-", r)) {
			return false
		}
	}
	return true
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

// headerlessRecord returns the first data line (blank lines and # comments
// skipped) as CSV fields when it has a comma: a list of URLs has one URL per
// line, so commas there mean a CSV whose header is missing. (A URL may hold
// a comma; such a list needs a url header and the URL in quotes.)
func headerlessRecord(data []byte) ([]string, int, bool) {
	for n, rest := 1, data; len(rest) > 0; n++ {
		line, r, _ := bytes.Cut(rest, []byte("\n"))
		rest = r
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		if !strings.Contains(s, ",") {
			return nil, 0, false
		}
		rec, err := csv.NewReader(strings.NewReader(s)).Read()
		if err != nil {
			// The row itself will be reported; its commas still give the layout.
			rec = strings.Split(s, ",")
		}
		return rec, n, true
	}
	return nil, 0, false
}

// guessLayout reads a header-less CSV by its first data row: the URLs are in
// the first field that looks like one (column 1 when none does), the other
// columns are named column<N>. The warning says so, and how to name them.
func guessLayout(first []string, line int) (*csvLayout, string) {
	c := &csvLayout{width: len(first), what: "the first line", comment: true}
	for i, f := range first {
		f = strings.TrimSpace(f)
		if _, err := Normalize(f); err == nil && (strings.Contains(f, "://") || strings.Contains(f, ".")) {
			c.urlCol = i
			break
		}
	}
	names := make([]string, len(first))
	for i := range first {
		names[i] = fmt.Sprintf("column%d", i+1)
		if i == c.urlCol {
			names[i] = "url"
		} else {
			c.extra = append(c.extra, names[i])
		}
	}
	return c, fmt.Sprintf("line %d has commas but the input has no header line naming a url column: "+
		"reading it as CSV with the URLs in column %d and the other columns named %s; "+
		"to name the columns yourself, add a first line such as %q",
		line, c.urlCol+1, strings.Join(c.extra, ", "), strings.Join(names, ","))
}

// csvLayout says how to read a CSV's records into Rows.
type csvLayout struct {
	width   int      // fields a record should have
	urlCol  int      // the field with the URL
	extra   []string // the other columns' names, in order
	what    string   // what width comes from, for messages
	comment bool     // skip # lines, as in a plain list
}

// headerLayout checks a header line's column names.
func headerLayout(header []string) (*csvLayout, error) {
	c := &csvLayout{width: len(header), urlCol: -1, what: "the header"}
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if strings.EqualFold(h, "url") {
			if c.urlCol >= 0 {
				return nil, errors.New(`CSV header repeats the column "url": give one column the URLs`)
			}
			c.urlCol = i
			continue
		}
		if seen[h] {
			return nil, fmt.Errorf("CSV header repeats the column %q", h)
		}
		seen[h] = true
		c.extra = append(c.extra, h)
	}
	for _, h := range c.extra {
		if reserved[strings.ToLower(h)] {
			return nil, fmt.Errorf("CSV column %q clashes with an output column; rename it", h)
		}
	}
	return c, nil
}

// read parses the records of data from offset off, where line lines have
// gone before. encoding/csv stops at a quoting error, and a bad quote can
// swallow the lines after it into one field; so after an error, or a url
// field that spans lines (never a real URL), the record's first line is
// that row's error and a fresh reader resumes on the next line.
func (c *csvLayout) read(data []byte, off, line int, lim Limits) (*Input, error) {
	in := &Input{ExtraHeader: c.extra}
	lines := lineCursor{data: data, off: off, line: line + 1}
	for off < len(data) {
		cr := csv.NewReader(bytes.NewReader(data[off:]))
		cr.FieldsPerRecord = -1
		if c.comment {
			cr.Comment = '#'
		}
		bad := 0 // the line a malformed record starts on
		for bad == 0 {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				return in, nil
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad = line + pe.StartLine
				err = in.add(c.broken(lines.text(bad), bad, fmt.Sprintf("CSV line %d: %v", bad, pe.Err)), lim)
			} else if err != nil {
				return nil, fmt.Errorf("reading CSV: %w", err)
			} else if l, _ := cr.FieldPos(0); c.urlCol < len(rec) && strings.Contains(rec[c.urlCol], "\n") {
				bad = line + l
				err = in.add(c.broken(lines.text(bad), bad, fmt.Sprintf("CSV line %d: a quoted url runs over several lines (is a closing quote missing?)", bad)), lim)
			} else if len(rec) > 1 || strings.TrimSpace(rec[0]) != "" {
				err = in.add(c.row(rec, line+l, lim), lim)
			}
			if err != nil {
				return nil, err
			}
		}
		off, line = lines.start(bad+1), bad
	}
	return in, nil
}

// row turns a well-formed record into a Row.
func (c *csvLayout) row(rec []string, line int, lim Limits) Row {
	row := Row{Line: line}
	if len(rec) != c.width {
		row.Invalid = fmt.Sprintf("CSV line %d has %s, %s has %d", line, plural(len(rec), "field"), c.what, c.width)
	}
	for i := range c.width {
		v := ""
		if i < len(rec) {
			v = rec[i]
		}
		if len(v) > lim.MaxLineLen {
			if row.Invalid == "" {
				row.Invalid = fmt.Sprintf("CSV line %d: a field is longer than %d bytes", line, lim.MaxLineLen)
			}
			v = clip(v)
		}
		if i == c.urlCol {
			row.Raw = strings.TrimSpace(v)
		} else {
			row.Extra = append(row.Extra, v)
		}
	}
	return row
}

// broken is the Row for a record that could not be parsed: its first line
// as written stands in for the URL.
func (c *csvLayout) broken(text string, line int, why string) Row {
	return Row{Line: line, Raw: clip(strings.TrimSpace(text)), Extra: make([]string, len(c.extra)), Invalid: why}
}

func (in *Input) add(row Row, lim Limits) error {
	in.Rows = append(in.Rows, row)
	if len(in.Rows) > lim.MaxURLs {
		return fmt.Errorf("input has more than the limit of %d URLs", lim.MaxURLs)
	}
	return nil
}

// lineCursor finds lines by number, moving only forward, so resuming after
// every malformed record still reads the input once.
type lineCursor struct {
	data []byte
	off  int // where line starts
	line int
}

// start returns the offset where line n starts (len(data) past the end).
func (lc *lineCursor) start(n int) int {
	for lc.line < n && lc.off < len(lc.data) {
		i := bytes.IndexByte(lc.data[lc.off:], '\n')
		if i < 0 {
			lc.off = len(lc.data)
			break
		}
		lc.off += i + 1
		lc.line++
	}
	return lc.off
}

// text returns line n without its line ending.
func (lc *lineCursor) text(n int) string {
	rest := lc.data[lc.start(n):]
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	return string(bytes.TrimSuffix(line, []byte("\r")))
}

func readLines(data []byte, lim Limits) (*Input, error) {
	in := &Input{}
	for n, rest := 1, data; len(rest) > 0; n++ {
		line, r, _ := bytes.Cut(rest, []byte("\n"))
		rest = r
		row := Row{Line: n}
		if len(line) > lim.MaxLineLen {
			line = line[:lim.MaxLineLen]
			row.Invalid = fmt.Sprintf("line %d is longer than %d bytes", n, lim.MaxLineLen)
		}
		row.Raw = strings.TrimSpace(string(line))
		if row.Raw == "" || strings.HasPrefix(row.Raw, "#") {
			continue
		}
		if row.Invalid != "" {
			row.Raw = clip(row.Raw)
		}
		if err := in.add(row, lim); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// clip shortens what stands in for an over-long or broken URL in a report.
func clip(s string) string {
	const keep = 100
	if utf8.RuneCountInString(s) <= keep {
		return s
	}
	r := []rune(s)
	return string(r[:keep]) + "…"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
