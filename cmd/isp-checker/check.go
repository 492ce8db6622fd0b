package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"

	"github.com/isp-checker/isp-checker/batch"
	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/report"
)

// checkCmd is `isp-checker check FILE|-`: batch website checks.
type checkCmd struct {
	common      *commonFlags
	logConfig   *promslog.Config
	file        *string
	module      *string
	concurrency *numberFlag
	timeout     *time.Duration
	format      *string
	output      *string
}

func addCheckCmd(app *kingpin.Application, common *commonFlags, logConfig *promslog.Config) (*kingpin.CmdClause, *checkCmd) {
	c := &checkCmd{common: common, logConfig: logConfig}
	cmd := app.Command("check", "Check a list of websites (CSV with a url column, or one URL per line; - reads stdin).")
	c.file = cmd.Arg("file", "Input file, or - for standard input.").Required().String()
	c.module = cmd.Flag("module", "http module from the config to check with.").Default("http_2xx").String()
	c.concurrency = &numberFlag{name: "concurrency", integer: true, min: 1}
	cmd.Flag("concurrency", "Checks running at once.").Default("64").SetValue(c.concurrency)
	c.timeout = cmd.Flag("timeout", "Timeout per URL (the module's timeout caps it).").Default("10s").Duration()
	c.format = cmd.Flag("format", "Output format: csv, json, xlsx or text.").Default("csv").Enum(report.CheckFormats...)
	c.output = cmd.Flag("output", "Write the report to this file instead of standard output.").Short('o').String()
	return cmd, c
}

// usageError is an error in what the user asked for: exit code 2.
type usageError struct{ error }

func (c *checkCmd) run() int {
	code, err := c.check()
	if err != nil {
		fmt.Fprintf(os.Stderr, "isp-checker check: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		if code == 0 {
			code = 1
		}
	}
	return code
}

func (c *checkCmd) check() (int, error) {
	if *c.timeout <= 0 {
		return 2, usageError{errors.New("--timeout must be positive")}
	}
	cfg, err := loadConfig(*c.common.configFile)
	if err != nil {
		return 2, usageError{err}
	}
	module, ok := cfg.Modules[*c.module]
	if !ok {
		return 2, usageError{fmt.Errorf("unknown module %q (modules: %s)", *c.module, strings.Join(cfg.ModuleNames(), ", "))}
	}
	if module.Prober != "http" {
		return 2, usageError{fmt.Errorf("module %q uses the %s prober; check needs an http module", *c.module, module.Prober)}
	}
	if *c.format == "xlsx" && *c.output == "" && isTerminal(os.Stdout) {
		return 2, usageError{errors.New("an xlsx workbook is binary: give --output FILE or redirect standard output")}
	}

	var in io.Reader = os.Stdin
	name := "standard input"
	// kingpin hands "-" over as "": both mean standard input.
	if *c.file != "-" && *c.file != "" {
		f, err := os.Open(*c.file)
		if err != nil {
			return 2, usageError{err}
		}
		defer f.Close()
		in, name = f, *c.file
	}
	input, err := batch.ReadInput(in, batch.DefaultLimits)
	if err != nil {
		return 2, usageError{fmt.Errorf("%s: %w", name, err)}
	}
	for _, w := range input.Warnings {
		fmt.Fprintf(os.Stderr, "isp-checker check: warning: %s: %s\n", name, w)
	}
	if len(input.Rows) == 0 {
		return 2, usageError{fmt.Errorf("%s has no URLs", name)}
	}
	// Open the output before checking, so a bad path fails before the work.
	out := io.Writer(os.Stdout)
	var outFile *os.File
	if *c.output != "" {
		outFile, err = os.Create(*c.output)
		if err != nil {
			return 2, usageError{err}
		}
		out = outFile
	}

	// The first Ctrl-C stops new checks; a second cuts the running ones short.
	// Either way the report holds what finished.
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
		fmt.Fprintln(os.Stderr, "\ninterrupted: finishing the checks under way (Ctrl-C again to cut them short)")
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(again)
		select {
		case <-again:
			abortNow()
		case <-abort.Done():
		}
	}()
	progress := newProgressBar(os.Stderr, len(input.Rows))
	rep := batch.Run(ctx, input, batch.Options{
		Module: module, ModuleName: *c.module, Policy: cfg.TargetPolicy,
		Concurrency: int(c.concurrency.val), Timeout: *c.timeout,
		Logger: probeLogger(c.logConfig), Progress: progress.update, Abort: abort,
	})
	progress.finish()

	werr := report.WriteCheck(out, *c.format, rep)
	if outFile != nil {
		if err := outFile.Close(); werr == nil {
			werr = err
		}
	}
	s := report.Summary(rep)
	fmt.Fprintf(os.Stderr, "checked %d of %d unique URLs in %.1fs: %d active, %d inactive, %d error; %d duplicates dropped\n",
		s.Checked, s.Unique, s.ElapsedSeconds, s.Active, s.Inactive, s.Error, s.Duplicates)
	if rep.Interrupted {
		fmt.Fprintln(os.Stderr, "interrupted: the report holds the checks finished before the interrupt")
	}
	if werr != nil {
		return 1, fmt.Errorf("writing the report: %w", werr)
	}
	if rep.AllActive() {
		return 0, nil
	}
	return 1, nil
}

// probeLogger keeps the per-URL probe logs (several lines each) out of a
// batch's stderr unless --log.level=debug asks for them.
func probeLogger(cfg *promslog.Config) *slog.Logger {
	if cfg.Level != nil && cfg.Level.String() == "debug" {
		return promslog.New(cfg)
	}
	return slog.New(slog.DiscardHandler)
}

// loadConfig reads a config file, or the embedded default when path is "".
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default()
	}
	return config.LoadFile(path)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
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

func newProgressBar(f *os.File, total int) *progressBar {
	return &progressBar{w: f, on: isTerminal(f), total: total, start: time.Now()}
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
