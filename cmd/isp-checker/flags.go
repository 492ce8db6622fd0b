package main

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
)

// numberFlag is a kingpin value whose parse errors name the flag, which
// kingpin's own Float64/Int do not.
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
func number(app *kingpin.Application, name, help, def string, integer bool, minimum float64) *numberFlag {
	f := &numberFlag{name: name, integer: integer, min: minimum}
	app.Flag(name, help).Default(def).SetValue(f)
	return f
}

// bytesFlag is a positive size such as 512MiB whose parse errors name the flag.
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

// durationFlag is a non-negative duration such as 30s or 2m whose parse
// errors name the flag; a positive one when the limit cannot be off.
type durationFlag struct {
	name     string
	val      time.Duration
	positive bool
}

func (f *durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if f.positive && (err != nil || v <= 0) {
		return fmt.Errorf("--%s: %q is not a positive duration such as 30s or 2m", f.name, s)
	}
	if err != nil || v < 0 {
		return fmt.Errorf("--%s: %q is not a duration such as 30s or 2m (0 turns the limit off)", f.name, s)
	}
	f.val = v
	return nil
}

func (f *durationFlag) String() string { return f.val.String() }

// duration declares a durationFlag with a default.
func duration(app *kingpin.Application, name, help, def string) *durationFlag {
	f := &durationFlag{name: name}
	app.Flag(name, help).Default(def).SetValue(f)
	return f
}

// urlFlag is a URL checked by parse, whose errors name the flag.
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
