package main

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
)

// The flag values below name their flag in every parse error, which
// kingpin's own (Float64, Int, Duration, Enum) do not.

// flagger is where flags are declared: the application (global flags) or
// a command.
type flagger interface {
	Flag(name, help string) *kingpin.FlagClause
}

// numberFlag is a number with a minimum.
type numberFlag struct {
	name    string
	val     float64
	integer bool
	min     float64
}

func (f *numberFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || (f.integer && v != float64(int64(v))) {
		kind := "a number"
		if f.integer {
			kind = "a whole number"
		}
		return fmt.Errorf("--%s: %q is not %s", f.name, s, kind)
	}
	if v < f.min {
		return fmt.Errorf("--%s: %s is below the minimum %g", f.name, s, f.min)
	}
	f.val = v
	return nil
}

func (f *numberFlag) String() string { return strconv.FormatFloat(f.val, 'g', -1, 64) }

// number declares a numeric flag with a default and a minimum.
func number(c flagger, name, help, def string, integer bool, minimum float64) *numberFlag {
	f := &numberFlag{name: name, integer: integer, min: minimum}
	c.Flag(name, help).Default(def).SetValue(f)
	return f
}

// bytesFlag is a positive size such as 512MiB.
type bytesFlag struct {
	name string
	val  units.Base2Bytes
}

func (f *bytesFlag) Set(s string) error {
	v, err := units.ParseBase2Bytes(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("--%s: %q is not a positive size such as 512MiB or 1GiB", f.name, s)
	}
	f.val = v
	return nil
}

func (f *bytesFlag) String() string { return f.val.String() }

// sizeFlag declares a bytesFlag with a default.
func sizeFlag(c flagger, name, help, def string) *bytesFlag {
	f := &bytesFlag{name: name}
	c.Flag(name, help).Default(def).SetValue(f)
	return f
}

// durationFlag is a duration such as 30s or 2m: positive, or for a
// limit, 0 to turn it off.
type durationFlag struct {
	name     string
	val      time.Duration
	positive bool
}

func (f *durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	switch {
	case f.positive && (err != nil || v <= 0):
		return fmt.Errorf("--%s: %q is not a positive duration such as 30s or 2m", f.name, s)
	case err != nil || v < 0:
		return fmt.Errorf("--%s: %q is not a duration such as 30s or 2m (0 turns the limit off)", f.name, s)
	}
	f.val = v
	return nil
}

func (f *durationFlag) String() string { return f.val.String() }

// duration declares a positive durationFlag with a default.
func duration(c flagger, name, help, def string) *durationFlag {
	f := &durationFlag{name: name, positive: true}
	c.Flag(name, help).Default(def).SetValue(f)
	return f
}

// limit declares a durationFlag for a limit that 0 turns off.
func limit(c flagger, name, help, def string) *durationFlag {
	f := &durationFlag{name: name}
	c.Flag(name, help).Default(def).SetValue(f)
	return f
}

// urlFlag is a URL checked by parse.
type urlFlag struct {
	name  string
	parse func(string) (*url.URL, error)
	val   *url.URL
}

func (f *urlFlag) Set(s string) error {
	u, err := f.parse(s)
	if err != nil {
		return fmt.Errorf("--%s: %w", f.name, err)
	}
	f.val = u
	return nil
}

func (f *urlFlag) String() string {
	if f.val == nil {
		return ""
	}
	return f.val.String()
}

// enumFlag is one of a few words.
type enumFlag struct {
	name  string
	val   string
	words []string
}

func (f *enumFlag) Set(s string) error {
	if !slices.Contains(f.words, s) {
		return fmt.Errorf("--%s: %q is not one of %s", f.name, s, strings.Join(f.words, ", "))
	}
	f.val = s
	return nil
}

func (f *enumFlag) String() string { return f.val }

// enum declares an enumFlag; its default is the first word.
func enum(c flagger, name, help string, words ...string) *enumFlag {
	f := &enumFlag{name: name, words: words}
	c.Flag(name, help).Default(words[0]).HintOptions(words...).SetValue(f)
	return f
}

// namedValue names its flag in the parse errors of a value declared
// elsewhere (promslog's level and format).
type namedValue struct {
	name string
	kingpin.Value
}

func (v *namedValue) Set(s string) error {
	if err := v.Value.Set(s); err != nil {
		return fmt.Errorf("--%s: %w", v.name, err)
	}
	return nil
}

// intervalFlag is a positive interval: a whole number of seconds, as
// blackbox_exporter takes it, or a duration such as 500ms or 1m.
type intervalFlag struct {
	name string
	val  time.Duration
}

func (f *intervalFlag) Set(s string) error {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n == 0 {
			return fmt.Errorf("--%s: %q is not positive", f.name, s)
		}
		if n > math.MaxInt64/uint64(time.Second) {
			return fmt.Errorf("--%s: %q seconds is too long", f.name, s)
		}
		f.val = time.Duration(n) * time.Second
		return nil
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return fmt.Errorf("--%s: %q is not a number of seconds (e.g. 30) or a duration (e.g. 30s)", f.name, s)
	case v <= 0:
		return fmt.Errorf("--%s: %q is not positive", f.name, s)
	}
	f.val = v
	return nil
}

func (f *intervalFlag) String() string { return f.val.String() }

// pathFlag is a path checked (and normalised) by parse; set says whether
// the command line gave it.
type pathFlag struct {
	name  string
	parse func(string) (string, error)
	val   string
	set   bool
}

func (f *pathFlag) Set(s string) error {
	p, err := f.parse(s)
	if err != nil {
		return fmt.Errorf("--%s: %w", f.name, err)
	}
	f.val, f.set = p, true
	return nil
}

func (f *pathFlag) String() string { return f.val }
