package actors

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocNamesEveryActor: the list in doc.go names every actor of the
// package — each New<Actor> function returning a gen.ProcessFactory — so
// that an actor added without a line in the package doc fails here.
func TestDocNamesEveryActor(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var actors []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "New") || fn.Type.Results == nil {
				continue
			}
			if sel, ok := fn.Type.Results.List[0].Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "ProcessFactory" {
				actors = append(actors, strings.ToLower(strings.TrimPrefix(fn.Name.Name, "New")))
			}
		}
	}
	if len(actors) < 9 {
		t.Fatalf("found only the actors %v", actors)
	}
	for _, a := range actors {
		if !regexp.MustCompile(`(?m)^//\t` + regexp.QuoteMeta(a) + ` `).Match(doc) {
			t.Errorf("doc.go does not list the %s actor", a)
		}
	}
}
