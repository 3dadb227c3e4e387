package rpccore

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/netron-go/netron/rpc"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9]+(\.[A-Za-z0-9]+)*$`)

// ValidateName checks a service name: letters, digits and dots, not
// starting or ending with a dot.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > 200 || !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %q (letters, digits and dots, e.g. \"calculator\" or \"billing.invoices\")", rpc.ErrInvalidName, name)
	}
	return nil
}

// ParseQualified splits and validates "name@version", where version is a
// full semantic version such as 1.0.0 or 2.1.0-rc.1.
func ParseQualified(qn string) (name string, version *semver.Version, err error) {
	name, v, ok := strings.Cut(qn, "@")
	if !ok {
		return "", nil, fmt.Errorf("%w: %q has no version (want name@1.2.3)", rpc.ErrInvalidVersion, qn)
	}
	if err := ValidateName(name); err != nil {
		return "", nil, err
	}
	version, err = semver.StrictNewVersion(v)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %q in %q: %w", rpc.ErrInvalidVersion, v, qn, err)
	}
	return name, version, nil
}

// spec is a parsed lookup: a name and an exact version, a range, or
// nothing (the latest version).
type spec struct {
	name  string
	exact *semver.Version
	rng   *semver.Constraints
}

// parseSpec parses "name", "name@latest", "name@*", "name@1.2.3" or a
// range such as "name@^1", "name@~1.2", "name@>=1.0 <2".
func parseSpec(s string) (spec, error) {
	name, v, _ := strings.Cut(s, "@")
	if err := ValidateName(name); err != nil {
		return spec{}, err
	}
	sp := spec{name: name}
	switch v {
	case "", "*", "latest", "x":
		return sp, nil
	}
	if ver, err := semver.StrictNewVersion(v); err == nil {
		sp.exact = ver
		return sp, nil
	}
	c, err := semver.NewConstraint(v)
	if err != nil {
		return spec{}, fmt.Errorf("%w: %q is neither a version nor a range: %w", rpc.ErrInvalidVersion, v, err)
	}
	sp.rng = c
	return sp, nil
}
