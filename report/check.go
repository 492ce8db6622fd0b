// Package report renders Results for people and machines: the batch check
// report as CSV, JSON, an Excel workbook or a text table, and the diagnosis
// of `isp-checker run`.
package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"

	"github.com/isp-checker/isp-checker/batch"
)

// CheckSchemaVersion versions the JSON of `isp-checker check`.
const CheckSchemaVersion = 1

// CheckFormats are the output formats of `isp-checker check`.
var CheckFormats = []string{"csv", "json", "xlsx", "text"}

// checkColumns are the fixed output columns; the input's own columns come
// after url.
var checkColumns = []string{"status", "http_status", "response_time_seconds", "checked_at", "final_url", "cert_expiry", "error", "input_url", "line"}

// WriteCheck writes a batch report in format.
func WriteCheck(w io.Writer, format string, r *batch.Report) error {
	switch format {
	case "csv":
		return writeCheckCSV(w, r)
	case "json":
		return writeCheckJSON(w, r)
	case "xlsx":
		return writeCheckXLSX(w, r)
	case "text":
		return writeCheckText(w, r)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(CheckFormats, ", "))
}

func header(r *batch.Report) []string {
	h := append([]string{"url"}, r.ExtraHeader...)
	return append(h, checkColumns...)
}

func record(o *batch.Outcome) []string {
	rec := append([]string{o.URL}, o.Extra...)
	expiry := ""
	if !o.CertExpiry.IsZero() {
		expiry = o.CertExpiry.Format(time.RFC3339)
	}
	status := ""
	if o.HTTPStatus > 0 {
		status = strconv.Itoa(o.HTTPStatus)
	}
	checked := ""
	if !o.CheckedAt.IsZero() {
		checked = o.CheckedAt.Format(time.RFC3339)
	}
	return append(rec, string(o.Status), status,
		strconv.FormatFloat(o.ResponseTimeSeconds, 'f', 6, 64),
		checked, o.FinalURL, expiry, o.Error, o.InputURL, strconv.Itoa(o.Line))
}

// csvSafe defuses cells a spreadsheet would run as a formula (CSV injection).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func writeCheckCSV(w io.Writer, r *batch.Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(header(r)); err != nil {
		return err
	}
	for i := range r.Outcomes {
		rec := record(&r.Outcomes[i])
		for j := range rec {
			rec[j] = csvSafe(rec[j])
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// CheckJSON is the JSON document of `isp-checker check`.
type CheckJSON struct {
	SchemaVersion int            `json:"schema_version"`
	Summary       CheckSummary   `json:"summary"`
	Results       []CheckJSONRow `json:"results"`
}

// CheckSummary counts the outcomes.
type CheckSummary struct {
	Unique         int     `json:"unique"`
	Checked        int     `json:"checked"`
	Active         int     `json:"active"`
	Inactive       int     `json:"inactive"`
	Error          int     `json:"error"`
	NotChecked     int     `json:"not_checked"` // after an interrupt; Checked does not count them
	Duplicates     int     `json:"duplicates_dropped"`
	Interrupted    bool    `json:"interrupted"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
}

// CheckJSONRow is one outcome with the input's extra columns by name.
type CheckJSONRow struct {
	batch.Outcome
	Columns map[string]string `json:"columns,omitempty"`
}

// Summary returns the counts of r.
func Summary(r *batch.Report) CheckSummary {
	c := r.Counts()
	return CheckSummary{
		Unique: r.Unique, Checked: len(r.Outcomes) - c[batch.NotChecked], Active: c[batch.Active], Inactive: c[batch.Inactive],
		Error: c[batch.Error], NotChecked: c[batch.NotChecked], Duplicates: r.Duplicates, Interrupted: r.Interrupted, ElapsedSeconds: r.Elapsed.Seconds(),
	}
}

func writeCheckJSON(w io.Writer, r *batch.Report) error {
	doc := CheckJSON{SchemaVersion: CheckSchemaVersion, Summary: Summary(r), Results: make([]CheckJSONRow, 0, len(r.Outcomes))}
	for _, o := range r.Outcomes {
		row := CheckJSONRow{Outcome: o}
		if len(r.ExtraHeader) > 0 {
			row.Columns = make(map[string]string, len(r.ExtraHeader))
			for i, h := range r.ExtraHeader {
				if i < len(o.Extra) {
					row.Columns[h] = o.Extra[i]
				}
			}
		}
		doc.Results = append(doc.Results, row)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func writeCheckXLSX(w io.Writer, r *batch.Report) error {
	f := excelize.NewFile()
	defer func() { _ = f.Close() }()
	const sheet = "Checks"
	if err := f.SetSheetName("Sheet1", sheet); err != nil {
		return err
	}
	sw, err := f.NewStreamWriter(sheet)
	if err != nil {
		return err
	}
	bold, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}})
	if err != nil {
		return err
	}
	h := header(r)
	cells := make([]any, len(h))
	for i, v := range h {
		cells[i] = excelize.Cell{StyleID: bold, Value: v}
	}
	if err := sw.SetRow("A1", cells); err != nil {
		return err
	}
	nExtra := len(r.ExtraHeader)
	for i := range r.Outcomes {
		o := &r.Outcomes[i]
		rec := record(o)
		row := make([]any, len(rec))
		for j, v := range rec {
			row[j] = v
		}
		// Numbers as numbers, so the sheet can sort and sum them.
		if o.HTTPStatus > 0 {
			row[1+nExtra+1] = o.HTTPStatus
		}
		row[1+nExtra+2] = o.ResponseTimeSeconds
		row[len(row)-1] = o.Line
		cell, err := excelize.CoordinatesToCellName(1, i+2)
		if err != nil {
			return err
		}
		if err := sw.SetRow(cell, row); err != nil {
			return err
		}
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	_, err = f.WriteTo(w)
	return err
}

// writeCheckText writes the table people read. A long DETAIL wraps onto
// continuation lines, as in the run report, since the end of an error
// often names the fix.
func writeCheckText(w io.Writer, r *batch.Report) error {
	t := &table{header: []string{"STATUS", "CODE", "TIME", "URL", "DETAIL"}, wrap: map[int]int{4: detailWidth}}
	for _, o := range r.Outcomes {
		code := "-"
		if o.HTTPStatus > 0 {
			code = strconv.Itoa(o.HTTPStatus)
		}
		detail := o.Error
		if detail == "" && o.FinalURL != "" && o.FinalURL != o.URL {
			detail = "→ " + o.FinalURL
		}
		// Whitespace is collapsed before escaping, so a newline in an
		// error is a place to wrap rather than a printed \n.
		detail = printable(strings.Join(strings.Fields(detail), " "))
		took := fmt.Sprintf("%.3fs", o.ResponseTimeSeconds)
		if o.CheckedAt.IsZero() {
			took = "-" // never started
		}
		t.add([]string{string(o.Status), code, took, printable(o.URL), detail}, nil)
	}
	bw := bufio.NewWriter(w)
	t.write(bw)
	return bw.Flush()
}

// printable escapes what a terminal would act on instead of showing: C0 and
// C1 controls (escape sequences), format characters such as bidi overrides,
// tabs, and bytes that are not UTF-8. A malformed URL is printed as written,
// so it may hold any of them.
func printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r < utf8.RuneSelf:
			q := strconv.QuoteRune(r) // '\x1b', '\t', …
			b.WriteString(q[1 : len(q)-1])
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += n
	}
	return b.String()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) > n {
		return string([]rune(s)[:n-1]) + "…"
	}
	return s
}
