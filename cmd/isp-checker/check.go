package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/isp-checker/isp-checker/batch"
	"github.com/isp-checker/isp-checker/report"
)

// checkCmd is `isp-checker check FILE|-`: batch website checks.
type checkCmd struct {
	configFile  *string
	file        *string
	module      *string
	concurrency *numberFlag
	timeout     *durationFlag
	format      *enumFlag
	output      *string
}

func addCheckCmd(app *kingpin.Application, g *globalFlags) *command {
	c := &checkCmd{configFile: g.configFile}
	cmd := app.Command("check", "Check a list of websites (CSV with a url column, or one URL per line; - reads stdin).")
	c.file = cmd.Arg("file", "Input file, or - for standard input.").Required().String()
	c.module = cmd.Flag("module", "http module from the config to check with.").Default("http_2xx").String()
	c.concurrency = number(cmd, "concurrency", "Checks running at once.", "64", true, 1)
	// No default: without the flag the module's timeout applies.
	c.timeout = &durationFlag{name: "timeout", positive: true}
	cmd.Flag("timeout", "Timeout per URL, in place of the module's timeout (default: the module's, 10s for the default config's http_2xx).").PlaceHolder("DURATION").SetValue(c.timeout)
	c.format = enum(cmd, "format", "Output format: "+strings.Join(report.CheckFormats, ", ")+".", report.CheckFormats...)
	c.output = cmd.Flag("output", "Write the report to this file instead of standard output.").Short('o').String()
	return &command{clause: cmd, usageCode: 2, exec: c.exec}
}

// exec checks every URL; it exits 0 when all are active, 1 otherwise.
func (c *checkCmd) exec(e *env) error {
	cfg, source, err := loadConfig(*c.configFile)
	if err != nil {
		return e.usage(err)
	}
	module, err := moduleOf(cfg, source, *c.module, "http", "check")
	if err != nil {
		return e.usage(err)
	}
	if c.format.val == "xlsx" && *c.output == "" && isTerminal(e.stdout) {
		return e.usage(errors.New("--format: an xlsx workbook is binary: give --output FILE or redirect standard output"))
	}

	in, name := e.stdin, "standard input"
	// kingpin hands "-" over as "": both mean standard input.
	if *c.file != "-" && *c.file != "" {
		f, err := os.Open(*c.file)
		if err != nil {
			return e.usage(err)
		}
		defer f.Close()
		in, name = f, *c.file
	}
	input, err := batch.ReadInput(in, batch.DefaultLimits)
	if err != nil {
		return e.usage(fmt.Errorf("%s: %w", name, err))
	}
	for _, w := range input.Warnings {
		fmt.Fprintf(e.stderr, "isp-checker check: warning: %s: %s\n", name, w)
	}
	if len(input.Rows) == 0 {
		return e.usage(fmt.Errorf("%s has no URLs", name))
	}
	// Open the output before checking, so a bad path fails before the work.
	out := e.stdout
	var outFile *os.File
	if *c.output != "" {
		if outFile, err = os.Create(*c.output); err != nil {
			return e.usage(fmt.Errorf("--output: %w", err))
		}
		out = outFile
	}

	// The first Ctrl-C stops new checks; a second cuts the running ones short.
	// Either way the report lists every URL, those not checked as such.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	abort, abortNow := context.WithCancel(context.Background())
	defer abortNow()
	go func() {
		select {
		case <-ctx.Done():
		case <-abort.Done():
			return
		}
		stop()
		fmt.Fprintln(e.stderr, "\ninterrupted: finishing the checks under way (Ctrl-C again to cut them short)")
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(again)
		select {
		case <-again:
			abortNow()
		case <-abort.Done():
		}
	}()
	progress := newProgressBar(e.stderr, len(input.Rows))
	rep := batch.Run(ctx, input, batch.Options{
		Module: module, ModuleName: *c.module, Policy: cfg.TargetPolicy,
		Concurrency: int(c.concurrency.val), Timeout: c.timeout.val,
		Logger: e.probeLogger, Progress: progress.update, Abort: abort,
	})
	progress.finish()

	werr := report.WriteCheck(out, c.format.val, rep)
	if outFile != nil {
		if err := outFile.Close(); werr == nil {
			werr = err
		}
	}
	s := report.Summary(rep)
	fmt.Fprintf(e.stderr, "checked %d of %s in %.1fs: %d active, %d inactive, %d error; %s dropped\n",
		s.Checked, report.Plural(s.Unique, "unique URL", "unique URLs"), s.ElapsedSeconds, s.Active, s.Inactive, s.Error,
		report.Plural(s.Duplicates, "duplicate", "duplicates"))
	switch {
	case rep.Interrupted && s.NotChecked > 0:
		fmt.Fprintf(e.stderr, "interrupted: the report lists %s as not_checked\n", report.Plural(s.NotChecked, "URL", "URLs"))
	case rep.Interrupted:
		fmt.Fprintln(e.stderr, "interrupted: every check had started, and finished")
	}
	if werr != nil {
		return fmt.Errorf("writing the report: %w", werr)
	}
	if rep.AllActive() {
		return nil
	}
	return exitStatus(1)
}

// progressBar draws done/total, rate and ETA on a terminal; elsewhere it is
// silent, so logs and pipes stay clean.
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	total int
	start time.Time
	last  time.Time
}

func newProgressBar(w io.Writer, total int) *progressBar {
	return &progressBar{w: w, on: isTerminal(w), total: total, start: time.Now()}
}

func (p *progressBar) update(done, total int) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = now
	fmt.Fprintf(p.w, "\r%s   ", progressLine(done, total, now.Sub(p.start)))
}

// progressLine is the bar, done/total, the rate so far and the time left.
func progressLine(done, total int, elapsed time.Duration) string {
	rate := float64(done) / max(elapsed.Seconds(), 1e-3)
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	const width = 30
	filled := width * min(done, total) / max(total, 1)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	return fmt.Sprintf("[%s] %d/%d  %s/s  ETA %s", bar, done, total, formatRate(rate), eta)
}

// formatRate keeps two significant digits below 10/s (slow sites, small
// batches), whole numbers above.
func formatRate(r float64) string {
	if r >= 10 || r == 0 {
		return strconv.FormatFloat(r, 'f', 0, 64)
	}
	return strconv.FormatFloat(r, 'g', 2, 64)
}

func (p *progressBar) finish() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
