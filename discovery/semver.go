package discovery

import (
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// MatchVersion reports whether version lies inside the range rng.
//
// Ranges use the syntax of github.com/Masterminds/semver/v3:
//
//	""  "*"  "latest"     any version
//	"1.2.3"               exactly 1.2.3 (also "=1.2.3", "v1.2.3")
//	"^1"  "^1.2"          compatible: >=1.0.0 <2.0.0, >=1.2.0 <2.0.0
//	"~1.2"                patch-level: >=1.2.0 <1.3.0
//	">=1.0 <2"            both (space or comma = and)
//	"^1 || ^3"            either
//
// A pre-release version (1.0.0-rc.1) matches only a range that names a
// pre-release, except for the any-version ranges, which match everything.
//
// An unparsable range fails with ErrInvalidRange and an unparsable version
// with ErrInvalidVersion.
func MatchVersion(version, rng string) (bool, error) {
	if _, err := parseVersion(version); err != nil {
		return false, err
	}
	m, err := parseRange(rng)
	if err != nil {
		return false, err
	}
	return m.match(version), nil
}

// ValidateVersion returns nil if v is a semantic version MatchVersion accepts
// ("1.2.3", "v1.2", "1.0.0-rc.1+build.5"), and an error wrapping
// ErrInvalidVersion otherwise.
func ValidateVersion(v string) error {
	_, err := parseVersion(v)
	return err
}

// ValidateRange returns nil if rng is a range MatchVersion accepts, and an
// error wrapping ErrInvalidRange otherwise.
func ValidateRange(rng string) error {
	_, err := parseRange(rng)
	return err
}

const maxVersionLen = 128

func parseVersion(v string) (*semver.Version, error) {
	if v == "" || len(v) > maxVersionLen {
		return nil, fmt.Errorf("%w: %q", ErrInvalidVersion, v)
	}
	sv, err := semver.NewVersion(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrInvalidVersion, v, err)
	}
	return sv, nil
}

// matcher is a parsed range; a nil constraint matches any version.
type matcher struct{ c *semver.Constraints }

func parseRange(rng string) (matcher, error) {
	r := strings.TrimSpace(rng)
	switch r {
	case "", "*", "x", "X", "latest":
		return matcher{}, nil
	}
	if len(r) > 256 {
		return matcher{}, fmt.Errorf("%w: range too long", ErrInvalidRange)
	}
	c, err := semver.NewConstraint(r)
	if err != nil {
		return matcher{}, fmt.Errorf("%w: %q: %w", ErrInvalidRange, rng, err)
	}
	return matcher{c: c}, nil
}

func (m matcher) match(version string) bool {
	v, err := semver.NewVersion(version)
	if err != nil {
		return false
	}
	if m.c == nil {
		return true
	}
	return m.c.Check(v)
}

// compareVersions orders two versions by semver precedence; unparsable
// versions sort below parsable ones and are then compared as strings.
func compareVersions(a, b string) int {
	va, ea := semver.NewVersion(a)
	vb, eb := semver.NewVersion(b)
	switch {
	case ea == nil && eb == nil:
		if c := va.Compare(vb); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	case ea == nil:
		return 1
	case eb == nil:
		return -1
	}
	return strings.Compare(a, b)
}
