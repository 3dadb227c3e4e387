package apicheck

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/api.golden")

const module = "github.com/netron-go/netron"

type listed struct {
	ImportPath string
	Name       string
	Export     string
	Imports    []string
	Module     *struct{ Path string }
}

// goList runs go list in the module's root and returns the packages.
func goList(t *testing.T, args ...string) []listed {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Name,Export,Imports,Module"}, args...)...)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listed
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func isInternal(path string) bool { return strings.Contains(path+"/", "/internal/") }

// user reports whether path is one of the module's programs: they use the
// library as a user would.
func user(path string) bool {
	rel := strings.TrimPrefix(path, module)
	return strings.HasPrefix(rel, "/examples/") || strings.HasPrefix(rel, "/cmd/")
}

func TestNoInternalTypesInPublicAPI(t *testing.T) {
	args := []string{"-deps", "-export"}
	if raceEnabled { // share the build cache of go test -race ./...
		args = append(args, "-race")
	}
	all := goList(t, append(args, "./...")...)
	exports := map[string]string{}
	var public []string
	for _, p := range all {
		exports[p.ImportPath] = p.Export
		if p.Module != nil && p.Module.Path == module && !isInternal(p.ImportPath) && !user(p.ImportPath) && p.Name != "main" {
			public = append(public, p.ImportPath)
		}
	}
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		return os.Open(exports[path])
	})
	var bad, api []string
	for _, path := range public {
		pkg, err := imp.Import(path)
		if err != nil {
			t.Fatal(err)
		}
		w := walker{seen: map[types.Type]bool{}}
		for _, name := range pkg.Scope().Names() {
			obj := pkg.Scope().Lookup(name)
			if !obj.Exported() {
				continue
			}
			w.at = pkg.Name() + "." + name
			api = append(api, declString(obj))
			w.object(obj)
			if tn, ok := obj.(*types.TypeName); ok && !tn.IsAlias() {
				ms := types.NewMethodSet(types.NewPointer(tn.Type()))
				for i := range ms.Len() {
					m := ms.At(i).Obj()
					if m.Exported() {
						api = append(api, types.ObjectString(m, qualifier))
						w.at = pkg.Name() + "." + name + "." + m.Name()
						w.typ(m.Type())
					}
				}
			}
		}
		bad = append(bad, w.bad...)
	}
	for _, b := range bad {
		t.Error(b)
	}
	golden(t, api)
}

func qualifier(p *types.Package) string {
	if strings.HasPrefix(p.Path(), module) {
		return p.Name()
	}
	return p.Path()
}

type walker struct {
	at   string
	seen map[types.Type]bool
	bad  []string
}

func (w *walker) object(obj types.Object) {
	if tn, ok := obj.(*types.TypeName); ok {
		if tn.IsAlias() {
			w.typ(types.Unalias(tn.Type()))
			return
		}
		n := tn.Type().(*types.Named)
		if tps := n.TypeParams(); tps != nil {
			for i := range tps.Len() {
				w.typ(tps.At(i).Constraint())
			}
		}
		w.typ(n.Underlying())
		return
	}
	w.typ(obj.Type())
}

// typ reports every named type of an internal package that t exposes.
func (w *walker) typ(t types.Type) {
	switch t := t.(type) {
	case *types.Alias:
		w.typ(types.Unalias(t))
	case *types.Named:
		if p := t.Obj().Pkg(); p != nil && isInternal(p.Path()) {
			w.bad = append(w.bad, fmt.Sprintf("%s mentions %s.%s", w.at, p.Path(), t.Obj().Name()))
		}
		for i := range t.TypeArgs().Len() {
			w.typ(t.TypeArgs().At(i))
		}
	case *types.Pointer:
		w.typ(t.Elem())
	case *types.Slice:
		w.typ(t.Elem())
	case *types.Array:
		w.typ(t.Elem())
	case *types.Chan:
		w.typ(t.Elem())
	case *types.Map:
		w.typ(t.Key())
		w.typ(t.Elem())
	case *types.Signature:
		for _, tup := range []*types.Tuple{t.Params(), t.Results()} {
			for i := range tup.Len() {
				w.typ(tup.At(i).Type())
			}
		}
	case *types.Struct:
		if w.seen[t] {
			return
		}
		w.seen[t] = true
		at := w.at
		for i := range t.NumFields() {
			if f := t.Field(i); f.Exported() {
				w.at = at + "." + f.Name()
				w.typ(f.Type())
			}
		}
		w.at = at
	case *types.Interface:
		if w.seen[t] {
			return
		}
		w.seen[t] = true
		at := w.at
		for i := range t.NumMethods() { // embedded interfaces' methods included
			if m := t.Method(i); m.Exported() {
				w.at = at + "." + m.Name()
				w.typ(m.Type())
			}
		}
		for i := range t.NumEmbeddeds() { // constraint unions and embedded names
			w.typ(t.EmbeddedType(i))
		}
		w.at = at
	case *types.Union:
		for i := range t.Len() {
			w.typ(t.Term(i).Type())
		}
	}
}

// TestUsersImportNoInternalPackage: the programs of the module use only the
// public API (their tests may use internal helpers).
func TestUsersImportNoInternalPackage(t *testing.T) {
	var bad []string
	for _, p := range goList(t, "./examples/...", "./cmd/...") {
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/") && isInternal(imp) {
				bad = append(bad, p.ImportPath+" imports "+imp)
			}
		}
	}
	for _, b := range bad {
		t.Error(b)
	}
}

func golden(t *testing.T, api []string) {
	slices.Sort(api)
	got := []byte(strings.Join(api, "\n") + "\n")
	const file = "testdata/api.golden"
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/apicheck -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the exported API changed; review it, then run go test ./internal/apicheck -update:\n%s", diff(string(want), string(got)))
	}
}

// diff lists the lines only in a (-) and only in b (+).
func diff(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range as {
		if !slices.Contains(bs, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bs {
		if !slices.Contains(as, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// declString is obj as the golden file records it: a struct type shows its
// exported fields only, so that the file changes with the API, not with
// the implementation.
func declString(obj types.Object) string {
	tn, ok := obj.(*types.TypeName)
	if !ok || tn.IsAlias() {
		return types.ObjectString(obj, qualifier)
	}
	st, ok := tn.Type().Underlying().(*types.Struct)
	if !ok {
		return types.ObjectString(obj, qualifier)
	}
	var fields []string
	for i := range st.NumFields() {
		if f := st.Field(i); f.Exported() {
			name := f.Name() + " "
			if f.Embedded() {
				name = ""
			}
			fields = append(fields, name+types.TypeString(f.Type(), qualifier))
		}
	}
	head := types.ObjectString(obj, qualifier)
	if i := strings.Index(head, " struct{"); i >= 0 {
		head = head[:i]
	}
	return head + " struct{" + strings.Join(fields, "; ") + "}"
}
