package sup

import (
	"os"
	"regexp"
	"testing"

	"ergo.services/ergo/act"
)

// TestDocNamesEveryChild: the tree drawn in doc.go names every member of
// the application and every child of each supervisor, so that a child
// added without a word in the package doc fails here.
func TestDocNamesEveryChild(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := NewApp(Deps{}).Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{string(spec.Name)}
	for _, m := range spec.Group {
		names = append(names, string(m.Name))
	}
	for _, s := range []interface {
		Init(args ...any) (act.SupervisorSpec, error)
	}{&controlPlane{}, &dataPlane{}, &edgeSup{}, &tailSup{}} {
		ss, err := s.Init()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range ss.Children {
			names = append(names, string(c.Name))
		}
	}
	for _, n := range names {
		if !regexp.MustCompile(`(?m)^//\t.*\b` + regexp.QuoteMeta(n) + `\b`).Match(doc) {
			t.Errorf("the tree in doc.go does not name %q", n)
		}
	}
}
