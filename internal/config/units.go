package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Size is a byte count written as an integer or with a unit ("512MiB",
// "10GiB", "1.5GB").
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// UnmarshalTOML accepts an integer or a string with a unit.
func (s *Size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		*s = Size(x)
		return nil
	case string:
		t := strings.TrimSpace(x)
		for _, u := range sizeUnits {
			if num, ok := strings.CutSuffix(t, u.suffix); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
				if err != nil || f < 0 {
					return fmt.Errorf("bad size %q", x)
				}
				*s = Size(f * u.mult)
				return nil
			}
		}
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return fmt.Errorf("bad size %q (want e.g. \"512MiB\" or \"10GiB\")", x)
		}
		*s = Size(n)
		return nil
	}
	return fmt.Errorf("bad size %v (want e.g. \"10GiB\")", v)
}

// Duration is a time.Duration written as "90s", "5m".
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v <= 0 {
		return fmt.Errorf("bad duration %q (want e.g. \"90s\" or \"5m\")", b)
	}
	*d = Duration(v)
	return nil
}

// Interval is a Duration that may be "0" (off); Set tells whether the
// key was given.
type Interval struct {
	D   time.Duration
	Set bool
}

// UnmarshalText parses a Go duration or "0".
func (d *Interval) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 {
		return fmt.Errorf("bad interval %q (want e.g. \"30s\", or \"0\" for off)", b)
	}
	*d = Interval{D: v, Set: true}
	return nil
}

// Rate is bytes per second, written as a Size with an optional "/s"
// ("64KiB/s", "1MB/s", 65536).
type Rate int64

// UnmarshalTOML accepts what Size accepts, optionally followed by "/s".
func (r *Rate) UnmarshalTOML(v any) error {
	if str, ok := v.(string); ok {
		v = strings.TrimSuffix(strings.TrimSpace(str), "/s")
	}
	var s Size
	if err := s.UnmarshalTOML(v); err != nil {
		return fmt.Errorf("bad rate %v (want e.g. \"64KiB/s\")", v)
	}
	*r = Rate(s)
	return nil
}
