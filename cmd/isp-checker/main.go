// Command isp-checker is a blackbox-style Prometheus exporter for internet
// connection and website health. This package only parses flags and wires
// the packages together; no probe logic lives here.
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// globalFlags are the flags every command takes, given before or after the
// command's name.
type globalFlags struct {
	configFile   *string
	log          *promslog.Config
	memoryBudget *bytesFlag
}

// env is what a command runs with: the process's streams (or a test's)
// and the loggers the global flags ask for.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// logger is for serve's own logs; probeLogger for the probes of check
	// and run, whose several lines a probe would bury the report under
	// unless --log.level=debug asks for them.
	logger, probeLogger *slog.Logger
	// usageCode is the running command's exit status for a usage error.
	usageCode int
}

// command is one of isp-checker's commands.
type command struct {
	clause *kingpin.CmdClause
	// usageCode is the exit status of a command line it refuses: 2, or 3
	// for run, whose 2 means "down".
	usageCode int
	exec      func(*env) error
}

// exitError ends a command with a status other than 0. err is what to
// say; nil when the command has said it (serve's log) or there is nothing
// to say (run's verdict, check's inactive sites).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitStatus ends a command with code, saying nothing (nil for 0).
func exitStatus(code int) error {
	if code == 0 {
		return nil
	}
	return &exitError{code: code}
}

// usage is an error in what the user asked for: the command's usage status.
func (e *env) usage(err error) error { return &exitError{code: e.usageCode, err: err} }

// terminated is how kingpin's exits (after --help, --version) reach run.
type terminated int

// run parses args, runs the chosen command and returns its exit status.
// It touches no process-wide stream or argument, so tests call it.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	defer func() {
		if p := recover(); p != nil {
			t, ok := p.(terminated)
			if !ok {
				panic(p)
			}
			code = int(t)
		}
	}()
	app, g, commands := newApp(stdout, stderr)
	selected, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "isp-checker: error: %v; try --help\n", err)
		return refusedCode(app, args, commands)
	}
	var cmd *command
	for _, c := range commands {
		if c.clause.FullCommand() == selected {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "isp-checker: unknown command %q\n", selected)
		return 2
	}

	g.log.Writer = stderr
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, usageCode: cmd.usageCode,
		logger: promslog.New(g.log), probeLogger: slog.New(slog.DiscardHandler)}
	if g.log.Level.String() == "debug" {
		e.probeLogger = e.logger
	}
	// The budget bounds every command's probes, not only the exporter's.
	prober.Budget().SetLimit(int64(g.memoryBudget.val))
	return exitCode(cmd.exec(e), selected, stderr)
}

// newApp declares the commands and their flags. kingpin's exits (after
// --help, --version) panic with terminated, which run recovers.
func newApp(stdout, stderr io.Writer) (*kingpin.Application, *globalFlags, []*command) {
	app := kingpin.New("isp-checker", "Blackbox-style Prometheus exporter for internet connection and website health.")
	app.Version(version.Print("isp-checker"))
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Terminate(func(code int) { panic(terminated(code)) })
	g := addGlobalFlags(app)
	return app, g, []*command{addServeCmd(app, g), addCheckCmd(app, g), addRunCmd(app, g)}
}

// addGlobalFlags declares the flags every command takes.
func addGlobalFlags(app *kingpin.Application) *globalFlags {
	g := &globalFlags{log: &promslog.Config{Level: promslog.NewLevel(), Format: promslog.NewFormat()}}
	app.Flag(flag.LevelFlagName, flag.LevelFlagHelp).Default("info").HintOptions(promslog.LevelFlagOptions...).
		SetValue(&namedValue{name: flag.LevelFlagName, Value: g.log.Level})
	app.Flag(flag.FormatFlagName, flag.FormatFlagHelp).Default("logfmt").HintOptions(promslog.FormatFlagOptions...).
		SetValue(&namedValue{name: flag.FormatFlagName, Value: g.log.Format})
	g.configFile = app.Flag("config.file", "Configuration file (blackbox_exporter's modules: format). Default: the embedded configuration.").String()
	g.memoryBudget = sizeFlag(app, "probes.memory-budget", "Memory that buffers sized by targets (bodies held for regexp or CEL matching, DNS over HTTPS answers, probe logs) may take across all running probes; a probe that needs more fails.", "128MiB")
	return g
}

// refusedCode is the exit status of a command line kingpin refused: the
// usage status of the command it was meant for.
func refusedCode(app *kingpin.Application, args []string, commands []*command) int {
	if ctx, _ := app.ParseContext(args); ctx != nil {
		for _, c := range commands {
			if ctx.SelectedCommand == c.clause {
				return c.usageCode
			}
		}
	}
	return 2
}

// exitCode turns a command's error into its exit status, saying what the
// error says.
func exitCode(err error, cmd string, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code, err = ee.code, ee.err
	}
	if err != nil {
		fmt.Fprintf(stderr, "isp-checker %s: %v\n", cmd, err)
	}
	return code
}

// loadConfig reads the configuration file, or the embedded default when
// path is "", and names where it came from.
func loadConfig(path string) (*config.Config, string, error) {
	if path == "" {
		c, err := config.Default()
		return c, "embedded default config", err
	}
	c, err := config.LoadFile(path)
	var unread *fs.PathError
	if errors.As(err, &unread) {
		err = fmt.Errorf("--config.file: %w", err)
	}
	return c, "config file " + path, err
}

// moduleOf is the module name of cfg (from source), which must use prober:
// a copy, the caller's to change (flags override its options).
func moduleOf(cfg *config.Config, source, name, prober, cmd string) (config.Module, error) {
	p, ok := cfg.Modules[name]
	if !ok || p == nil {
		return config.Module{}, fmt.Errorf("--module: %s has no module %q (modules: %s)", source, name, strings.Join(cfg.ModuleNames(), ", "))
	}
	m := *p
	if m.Prober != prober {
		return m, fmt.Errorf("--module: module %q uses the %s prober; %s needs an %s module", name, m.Prober, cmd, prober)
	}
	return m, nil
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
