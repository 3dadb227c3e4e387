package app

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/netron-go/netron"
)

// EnvPrefix starts the name of every environment variable that sets a field
// of the netron key: NETRON_ then the field's path in upper snake case
// (netron.discovery.redis.host is NETRON_DISCOVERY_REDIS_HOST,
// netron.requestTimeout is NETRON_REQUEST_TIMEOUT).
const EnvPrefix = "NETRON_"

// DefaultShutdownTimeout bounds a graceful shutdown unless the configuration
// (shutdownTimeout) or WithShutdownTimeout says otherwise.
const DefaultShutdownTimeout = 10 * time.Second

// Config is an application's configuration: the seed's shape, with the
// node's settings under the netron key, plus the application's own.
//
//	netron:
//	  id: my-node
//	  port: 9000
//	  server: true
//	  discovery:
//	    enabled: true
//	    redis: {host: localhost, port: 6379, password: secret}
//	    interval: 5000   # milliseconds, as in Titan; "5s" works too
//	    ttl: 10000
//	logger: {level: info, format: text}
//	shutdownTimeout: 10s
//	calculator: {precision: 2}   # any other key: a section for your modules
//
// Durations are numbers of milliseconds (Titan's unit) or Go duration
// strings ("5s", "250ms"). Every other top-level key is a section a module
// reads with Section.
type Config struct {
	// Netron is the node's configuration (the netron key).
	Netron netron.Config `json:"netron" yaml:"netron"`
	// Logger configures the application's logger (the logger key).
	Logger LoggerConfig `json:"logger" yaml:"logger"`
	// ShutdownTimeout bounds a graceful shutdown (Run, on SIGINT or
	// SIGTERM). Zero: DefaultShutdownTimeout.
	ShutdownTimeout time.Duration `json:"shutdownTimeout" yaml:"shutdownTimeout"`

	sections map[string]*yaml.Node
	file     string
	origins  map[string]string // field path → where its value came from
}

// LoggerConfig configures the application's logger.
type LoggerConfig struct {
	// Level is debug, info (the default), warn or error.
	Level string `json:"level" yaml:"level"`
	// Format is text (the default) or json.
	Format string `json:"format" yaml:"format"`
}

// ErrInvalidConfig is matched (errors.Is) by every configuration error. It
// is netron.ErrInvalidConfig, so the node's own validation errors match it
// too.
var ErrInvalidConfig = netron.ErrInvalidConfig

// ConfigError is an invalid configuration value. Field is its path
// ("netron.port", "netron.discovery.ttl") and Source where it came from: a
// file and line ("app.yaml:3"), or an environment variable ("NETRON_PORT").
// A file that is not YAML or JSON at all has no Field and the file as its
// Source.
type ConfigError struct {
	Field  string
	Source string
	Err    error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("invalid config: ")
	if e.Field == "" { // the file as a whole: not YAML or JSON
		b.WriteString(e.Source)
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
		return b.String()
	}
	b.WriteString(e.Field)
	if e.Source != "" {
		b.WriteString(" (")
		b.WriteString(e.Source)
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the reason.
func (e *ConfigError) Unwrap() error { return e.Err }

// Is matches ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// LoadConfig reads the configuration file path (YAML or JSON), applies the
// NETRON_… environment variables over it and validates the result. With an
// empty path the configuration comes from the environment alone.
func LoadConfig(path string) (*Config, error) {
	return Load(path, os.Environ())
}

// Load is LoadConfig with the environment given as "KEY=value" strings, as
// os.Environ returns them.
func Load(path string, environ []string) (*Config, error) {
	var c *Config
	if path == "" {
		c = &Config{}
	} else {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		c, err = ParseConfig(data, path)
		if err != nil {
			return nil, err
		}
	}
	if err := c.ApplyEnv(environ); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseConfig parses a configuration file's contents. name is the file's
// name: it appears in errors, and its extension picks the format (.json is
// JSON, .yaml and .yml YAML; otherwise a document starting with { is JSON).
// It does not read the environment and does not validate; Load does both.
func ParseConfig(data []byte, name string) (*Config, error) {
	var root *yaml.Node
	var err error
	if isJSON(data, name) {
		root, err = parseJSON(data)
	} else {
		var doc yaml.Node
		err = yaml.Unmarshal(data, &doc)
		root = &doc
	}
	if err != nil { // not YAML or JSON at all: as invalid as a bad field
		return nil, &ConfigError{Source: name, Err: err}
	}
	c := &Config{file: name}
	if err := c.decodeRoot(root); err != nil {
		return nil, err
	}
	return c, nil
}

func isJSON(data []byte, name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return true
	case ".yaml", ".yml":
		return false
	}
	return bytes.HasPrefix(bytes.TrimSpace(data), []byte("{"))
}

// decodeRoot decodes the top-level mapping: the keys of Config's fields
// into them, every other key into a section.
func (c *Config) decodeRoot(root *yaml.Node) error {
	n := resolve(root)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return c.errorAt(n, "(root)", fmt.Errorf("expected a mapping of keys, found %s", kindName(n)))
	}
	d := decoder{c: c}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "netron":
			err = d.decode(v, reflect.ValueOf(&c.Netron).Elem(), "netron")
		case "logger":
			err = d.decode(v, reflect.ValueOf(&c.Logger).Elem(), "logger")
		case "shutdownTimeout":
			err = d.decode(v, reflect.ValueOf(&c.ShutdownTimeout).Elem(), "shutdownTimeout")
		default:
			if c.sections == nil {
				c.sections = make(map[string]*yaml.Node)
			}
			c.sections[k.Value] = v
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Section decodes the top-level key name of the configuration file into v,
// a pointer, with the rules of the netron key: struct fields are matched by
// their json tag (else yaml tag, else their name, ignoring case), unknown
// keys are errors, durations take milliseconds or Go duration strings. A
// missing section leaves v as it is.
func (c *Config) Section(name string, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: Section(%q): need a non-nil pointer, got %T", name, v)
	}
	n, ok := c.sections[name]
	if !ok {
		return nil
	}
	d := decoder{c: c}
	return d.decode(n, rv.Elem(), name)
}

// Sections returns the names of the top-level keys that are not the
// application's own (netron, logger, shutdownTimeout), sorted.
func (c *Config) Sections() []string {
	out := make([]string, 0, len(c.sections))
	for k := range c.sections {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Source returns where the value of field (a path such as "netron.port")
// came from: "file:line", the environment variable, or "" when it was not
// set by the file or the environment.
func (c *Config) Source(field string) string { return c.origins[field] }

func (c *Config) setOrigin(field, src string) {
	if c.origins == nil {
		c.origins = make(map[string]string)
	}
	c.origins[field] = src
}

// ApplyEnv sets the fields of the netron key named by NETRON_… variables
// in environ ("KEY=value" strings), over what the file said. Variables that
// name no field are ignored.
func (c *Config) ApplyEnv(environ []string) error {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	var firstErr error
	d := decoder{c: c}
	walkLeaves(reflect.ValueOf(&c.Netron).Elem(), "netron", func(v reflect.Value, path string) {
		name := EnvName(path)
		raw, ok := env[name]
		if !ok || firstErr != nil {
			return
		}
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: raw}
		composite := v.Kind() == reflect.Map || v.Kind() == reflect.Interface ||
			v.Kind() == reflect.Slice && v.Type().Elem().Kind() != reflect.Uint8 ||
			v.Kind() == reflect.Struct && !v.Addr().Type().Implements(textUnmarshaler)
		if composite {
			// Composite values are written as YAML (or JSON) in the variable.
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(raw), &doc); err != nil {
				firstErr = &ConfigError{Field: path, Source: name, Err: err}
				return
			}
			n = resolve(&doc)
		}
		d.envName = name
		if err := d.decode(n, v, path); err != nil {
			firstErr = err
		}
	})
	return firstErr
}

// EnvName returns the environment variable of a field path under the
// netron key: EnvName("netron.discovery.redis.host") is
// "NETRON_DISCOVERY_REDIS_HOST".
func EnvName(path string) string {
	var b strings.Builder
	for i, seg := range strings.Split(path, ".") {
		if i > 0 {
			b.WriteByte('_')
		}
		rs := []rune(seg)
		for j, r := range rs {
			if j > 0 && unicode.IsUpper(r) && (unicode.IsLower(rs[j-1]) || j+1 < len(rs) && unicode.IsLower(rs[j+1])) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}

// EnvVars returns the environment variables the configuration reads, each
// with the field it sets, in the order of the fields.
func EnvVars() [][2]string {
	var out [][2]string
	var c netron.Config
	walkLeaves(reflect.ValueOf(&c).Elem(), "netron", func(_ reflect.Value, path string) {
		out = append(out, [2]string{EnvName(path), path})
	})
	return out
}

// walkLeaves calls fn for every settable field of struct v that is not a
// struct itself (nested structs are walked), by path.
func walkLeaves(v reflect.Value, path string, fn func(reflect.Value, string)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := fieldName(f)
		if !ok {
			continue
		}
		fv := v.Field(i)
		p := path + "." + name
		if fv.Kind() == reflect.Struct && !fv.Addr().Type().Implements(textUnmarshaler) {
			walkLeaves(fv, p, fn)
			continue
		}
		fn(fv, p)
	}
}

// fieldName is the configuration key of a struct field: its json tag name,
// else its yaml tag name, else its Go name with a lower-case first letter.
// ok is false for unexported and ignored ("-") fields.
func fieldName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	for _, key := range []string{"json", "yaml"} {
		tag, ok := f.Tag.Lookup(key)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			return "", false
		}
		if name != "" {
			return name, true
		}
	}
	if f.Type == reflect.TypeFor[*slog.Logger]() {
		return "", false
	}
	r := []rune(f.Name)
	r[0] = unicode.ToLower(r[0])
	return string(r), true
}

// Validate checks the configuration and returns a *ConfigError naming the
// first bad field and where its value came from.
func (c *Config) Validate() error {
	switch strings.ToLower(c.Logger.Level) {
	case "", "debug", "info", "warn", "warning", "error":
	default:
		return c.fieldError("logger.level", fmt.Errorf("%q is not a level (debug, info, warn, error)", c.Logger.Level))
	}
	switch strings.ToLower(c.Logger.Format) {
	case "", "text", "json":
	default:
		return c.fieldError("logger.format", fmt.Errorf("%q is not a format (text, json)", c.Logger.Format))
	}
	if c.ShutdownTimeout < 0 {
		return c.fieldError("shutdownTimeout", errors.New("must not be negative"))
	}
	if err := c.Netron.Validate(); err != nil {
		return c.netronError(err)
	}
	return nil
}

// netronError turns an error of netron.Config.Validate ("netron: invalid
// config: port: …") into a *ConfigError for netron.port with its source.
func (c *Config) netronError(err error) error {
	msg := strings.TrimPrefix(err.Error(), ErrInvalidConfig.Error()+": ")
	field, reason, ok := strings.Cut(msg, ": ")
	if !ok || strings.ContainsAny(field, " ") {
		return &ConfigError{Field: "netron", Source: c.file, Err: err}
	}
	return c.fieldError("netron."+field, errors.New(reason))
}

func (c *Config) fieldError(field string, err error) error {
	return &ConfigError{Field: field, Source: c.origins[field], Err: err}
}

func (c *Config) errorAt(n *yaml.Node, field string, err error) error {
	src := c.file
	if n != nil && n.Line > 0 && src != "" {
		src += ":" + strconv.Itoa(n.Line)
	}
	return &ConfigError{Field: field, Source: src, Err: err}
}

// slogLevel returns the configured log level.
func (lc LoggerConfig) slogLevel() slog.Level {
	switch strings.ToLower(lc.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// decoder decodes YAML nodes into Go values, naming the field of every
// error and recording where each value came from.
type decoder struct {
	c       *Config
	envName string // set while decoding an environment variable
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (d *decoder) source(n *yaml.Node) string {
	if d.envName != "" {
		return d.envName
	}
	if d.c.file == "" {
		return ""
	}
	if n.Line > 0 {
		return d.c.file + ":" + strconv.Itoa(n.Line)
	}
	return d.c.file
}

func (d *decoder) fail(n *yaml.Node, path string, format string, args ...any) error {
	return &ConfigError{Field: path, Source: d.source(n), Err: fmt.Errorf(format, args...)}
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) error {
	n = resolve(n)
	if n == nil || isNull(n) {
		return nil
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return d.decode(n, v.Elem(), path)
	}
	if n.Kind == yaml.ScalarNode && v.CanAddr() {
		// Types that read themselves from text (net.IP, time.Time, …),
		// and byte strings.
		if tu, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
			if err := tu.UnmarshalText([]byte(n.Value)); err != nil {
				return d.fail(n, path, "%v", err)
			}
			d.c.setOrigin(path, d.source(n))
			return nil
		}
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte(n.Value))
			d.c.setOrigin(path, d.source(n))
			return nil
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		return d.decodeStruct(n, v, path)
	case reflect.Map:
		return d.decodeMap(n, v, path)
	case reflect.Slice:
		return d.decodeSlice(n, v, path)
	case reflect.Interface:
		if v.NumMethod() != 0 {
			return d.fail(n, path, "cannot decode into %s", v.Type())
		}
		var x any
		if err := n.Decode(&x); err != nil {
			return d.fail(n, path, "%v", err)
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
		d.c.setOrigin(path, d.source(n))
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return d.fail(n, path, "expected %s, found %s", typeName(v.Type()), kindName(n))
	}
	if err := d.decodeScalar(n, v); err != nil {
		return d.fail(n, path, "%v", err)
	}
	d.c.setOrigin(path, d.source(n))
	return nil
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value) error {
	s := strings.TrimSpace(n.Value)
	if v.Type() == durationType {
		dur, err := parseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(dur))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || v.OverflowInt(i) {
			return fmt.Errorf("%q is not an integer%s", n.Value, rangeHint(err, v))
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || v.OverflowUint(u) {
			return fmt.Errorf("%q is not a non-negative integer%s", n.Value, rangeHint(err, v))
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", n.Value)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("cannot decode into %s", v.Type())
	}
	return nil
}

func rangeHint(err error, v reflect.Value) string {
	if err == nil || errors.Is(err, strconv.ErrRange) {
		return fmt.Sprintf(" in the range of %s", v.Type())
	}
	return ""
}

// parseDuration reads a number of milliseconds (Titan's unit: 5000, 1.5)
// or a Go duration string ("5s", "250ms").
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		ms := f * float64(time.Millisecond)
		if ms > float64(1<<63-1) || ms < -float64(1<<63) {
			return 0, fmt.Errorf("%s ms is out of range", s)
		}
		return time.Duration(ms), nil
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (milliseconds such as 5000, or a Go duration such as \"5s\")", s)
	}
	return dur, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes", "on", "1", "t", "y":
		return true, nil
	case "false", "no", "off", "0", "f", "n", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (true or false)", s)
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		return d.fail(n, path, "expected a mapping, found %s", kindName(n))
	}
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		if name, ok := fieldName(t.Field(i)); ok {
			fields[name] = i
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		idx, ok := fields[k.Value]
		if !ok {
			// Accept a key that differs only in case.
			for name, j := range fields {
				if strings.EqualFold(name, k.Value) {
					idx, ok = j, true
					break
				}
			}
		}
		if !ok {
			return d.fail(k, join(path, k.Value), "unknown field%s", suggest(k.Value, fields))
		}
		name, _ := fieldName(t.Field(idx))
		if err := d.decode(val, v.Field(idx), join(path, name)); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		return d.fail(n, path, "expected a mapping, found %s", kindName(n))
	}
	if v.Type().Key().Kind() != reflect.String {
		return d.fail(n, path, "cannot decode into %s (keys must be strings)", v.Type())
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		elem := reflect.New(v.Type().Elem()).Elem()
		if err := d.decode(val, elem, join(path, k.Value)); err != nil {
			return err
		}
		v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
	}
	return nil
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.SequenceNode {
		return d.fail(n, path, "expected a list, found %s", kindName(n))
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		if err := d.decode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	v.Set(s)
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest proposes the known field closest to an unknown key.
func suggest(key string, fields map[string]int) string {
	best, bestD := "", 3
	for name := range fields {
		if dist := editDistance(strings.ToLower(key), strings.ToLower(name)); dist < bestD || dist == bestD && best != "" && name < best {
			best, bestD = name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch n.Kind {
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		case yaml.AliasNode:
			n = n.Alias
		case 0: // an empty document
			return nil
		default:
			return n
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func typeName(t reflect.Type) string {
	if t == durationType {
		return "a duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// parseJSON parses a JSON document into the YAML node tree the decoder
// walks, with line numbers, so that JSON and YAML files get the same
// errors. JSON syntax errors name their line.
func parseJSON(data []byte) (*yaml.Node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	lineAt := func(off int64) int {
		return bytes.Count(data[:min(int(off), len(data))], []byte("\n")) + 1
	}
	syntaxErr := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("line %d: %v", lineAt(se.Offset), se)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("unexpected end of JSON")
		}
		return err
	}
	var parse func() (*yaml.Node, error)
	parse = func() (*yaml.Node, error) {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxErr(err)
		}
		// The token starts after any whitespace following off.
		rest := data[min(int(off), len(data)):]
		off += int64(len(rest) - len(bytes.TrimLeft(rest, " \t\r\n,:")))
		line := lineAt(off)
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line}
				for dec.More() {
					koff := dec.InputOffset()
					ktok, err := dec.Token()
					if err != nil {
						return nil, syntaxErr(err)
					}
					krest := data[min(int(koff), len(data)):]
					koff += int64(len(krest) - len(bytes.TrimLeft(krest, " \t\r\n,")))
					key, _ := ktok.(string)
					val, err := parse()
					if err != nil {
						return nil, err
					}
					m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: lineAt(koff)}, val)
				}
				if _, err := dec.Token(); err != nil {
					return nil, syntaxErr(err)
				}
				return m, nil
			case '[':
				s := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: line}
				for dec.More() {
					e, err := parse()
					if err != nil {
						return nil, err
					}
					s.Content = append(s.Content, e)
				}
				if _, err := dec.Token(); err != nil {
					return nil, syntaxErr(err)
				}
				return s, nil
			}
			return nil, fmt.Errorf("line %d: unexpected %q", line, t)
		case string:
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t, Line: line}, nil
		case json.Number:
			tag := "!!int"
			if strings.ContainsAny(t.String(), ".eE") {
				tag = "!!float"
			}
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: t.String(), Line: line}, nil
		case bool:
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t), Line: line}, nil
		case nil:
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: line}, nil
		}
		return nil, fmt.Errorf("line %d: unexpected token %v", line, tok)
	}
	root, err := parse()
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON document")
	}
	return root, nil
}
