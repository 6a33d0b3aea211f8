package docs

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// The repository root, seen from this package's directory.
const root = ".."

// maxReadmeLines keeps the README a few screens long; details belong here.
const maxReadmeLines = 250

// skipDirs are directories that hold no sources of the repository: build
// output, local data, and fuzz corpora (random bytes).
var skipDirs = map[string]bool{
	".git": true, "bin": true, "data": true, "cluster-data": true,
	"bench-results": true, "dev-auth": true, "testdata": true, "node_modules": true,
}

// scanned reports whether a file can hold references: sources, scripts,
// configuration and documents.
func scanned(name string) bool {
	switch filepath.Ext(name) {
	case ".go", ".md", ".sh", ".sql", ".yml", ".yaml", ".example":
		return true
	}
	return name == "Makefile" || name == "Dockerfile"
}

type file struct {
	rel  string // slash-separated, relative to the root
	text string
}

// repoFiles reads every scanned file of the repository except this test,
// which spells out the patterns it looks for.
func repoFiles(t *testing.T) []file {
	t.Helper()
	var files []file
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (skipDirs[d.Name()] || strings.HasPrefix(d.Name(), "data-")) {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if !scanned(d.Name()) || rel == "docs/refs_test.go" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, file{rel, string(b)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// lineOf returns the 1-based line of byte offset i in text.
func lineOf(text string, i int) int { return strings.Count(text[:i], "\n") + 1 }

var (
	fence       = regexp.MustCompile("^\\s*(```|~~~)")
	heading     = regexp.MustCompile(`^#{1,6}\s+(.+?)\s*#*\s*$`)
	htmlAnchor  = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	docRef      = regexp.MustCompile(`docs/([A-Za-z0-9_.-]+\.md)(?:#([A-Za-z0-9_-]+))?`)
	mdLink      = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	codeSpan    = regexp.MustCompile("`([^`\n]+)`")
	pathToken   = regexp.MustCompile(`^([A-Za-z0-9_.-]+)/[A-Za-z0-9_./-]*$`)
	goNameToken = regexp.MustCompile(`^([a-z][a-z0-9]*)\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?$`)
	// camelCase is a bare Go name such as flushAppends or TailSocket:
	// letters and digits, an upper-case letter after a run of lower-case
	// ones (so units such as KiB do not count).
	camelCase = regexp.MustCompile(`^[A-Za-z][a-z0-9]{2,}[A-Z][A-Za-z0-9]*$`)
)

// slug is GitHub's anchor for a heading: lower case, every character that
// is not a letter, digit, '_', '-' or space dropped, spaces turned into
// '-'.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the anchors a Markdown document defines: its headings'
// slugs (with GitHub's -1, -2 suffixes for repeats) and explicit
// <a id="..."> anchors. Lines inside fenced code blocks are not headings.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		if m := heading.FindStringSubmatch(line); m != nil {
			s := slug(m[1])
			if n := seen[s]; n > 0 {
				out[fmt.Sprintf("%s-%d", s, n)] = true
			} else {
				out[s] = true
			}
			seen[s]++
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
	}
	return out
}

// docAnchors maps each document of docs/ to its anchors.
func docAnchors(t *testing.T, files []file) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for _, f := range files {
		if path.Dir(f.rel) == "docs" && strings.HasSuffix(f.rel, ".md") {
			out[path.Base(f.rel)] = anchors(f.text)
		}
	}
	if len(out) == 0 {
		t.Fatal("no documents found under docs/")
	}
	return out
}

// TestReferencesResolve: every docs/<file>.md#<anchor> in any file, and
// every relative link in a Markdown file, names an existing file and
// section.
func TestReferencesResolve(t *testing.T) {
	files := repoFiles(t)
	docs := docAnchors(t, files)
	byPath := map[string]file{}
	mdAnchors := map[string]map[string]bool{} // by path, computed once
	for _, f := range files {
		byPath[f.rel] = f
	}
	check := func(f file, at int, target, anchor string, targetAnchors map[string]bool) {
		t.Helper()
		if targetAnchors == nil {
			t.Errorf("%s:%d: %s: no such document", f.rel, lineOf(f.text, at), target)
			return
		}
		if anchor != "" && !targetAnchors[anchor] {
			t.Errorf("%s:%d: %s#%s: no such section", f.rel, lineOf(f.text, at), target, anchor)
		}
	}
	refs := 0
	for _, f := range files {
		for _, m := range docRef.FindAllStringSubmatchIndex(f.text, -1) {
			name := f.text[m[2]:m[3]]
			anchor := ""
			if m[4] >= 0 {
				anchor = f.text[m[4]:m[5]]
			}
			check(f, m[0], "docs/"+name, anchor, docs[name])
			refs++
		}
		if !strings.HasSuffix(f.rel, ".md") {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatchIndex(f.text, -1) {
			link := f.text[m[2]:m[3]]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			target, anchor, _ := strings.Cut(link, "#")
			if target == "" {
				target = f.rel
			} else {
				target = path.Clean(path.Join(path.Dir(f.rel), target))
			}
			refs++
			if strings.HasSuffix(target, ".md") {
				a, ok := mdAnchors[target]
				if g, found := byPath[target]; found && !ok {
					a = anchors(g.text)
					mdAnchors[target] = a
				}
				check(f, m[0], target, anchor, a)
				continue
			}
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(target))); err != nil {
				t.Errorf("%s:%d: link to %s: no such file", f.rel, lineOf(f.text, m[0]), target)
			}
		}
	}
	if refs == 0 {
		t.Fatal("found no references at all: is the scan broken?")
	}
}

// outside are references to documents that are not in the repository:
// the design documents the project started from. A pattern may be allowed
// in one file.
var outside = []struct {
	hint      string // a file without this (lower-cased) text cannot match; "" = any file
	re        *regexp.Regexp
	allowedIn string
}{
	{re: regexp.MustCompile(`\.\./shared|/work/shared|shared/spec|spec/API`)},
	{hint: ".md", re: regexp.MustCompile(`\bAPI(-v2)?\.md\b|\bDESIGN\.md\b`)},
	{hint: "notes/", re: regexp.MustCompile(`\bnotes/[A-Za-z0-9_-]+\.md\b`)},
	{hint: "spec", re: regexp.MustCompile(`(?i)\bspec\s*§|\bthe spec\b|\bthe spec's\b`)},
	// The records name the old numbers they replace.
	{hint: "decision", re: regexp.MustCompile(`\bDecisions? \d`), allowedIn: "docs/decisions.md"},
}

// rfcSection matches the text before the § of an RFC citation such as
// "RFC 7515 §4.1.11", the one use of § that stays.
var rfcSection = regexp.MustCompile(`RFC \d+ $`)

// TestNoOutsideReferences: comments and documents cite docs/, never the
// design documents outside the repository.
func TestNoOutsideReferences(t *testing.T) {
	for _, f := range repoFiles(t) {
		lower := strings.ToLower(f.text)
		for _, o := range outside {
			if f.rel == o.allowedIn || !strings.Contains(lower, o.hint) {
				continue
			}
			for _, m := range o.re.FindAllStringIndex(f.text, -1) {
				t.Errorf("%s:%d: reference outside the repository: %q (cite docs/<file>.md#<section>)",
					f.rel, lineOf(f.text, m[0]), f.text[m[0]:m[1]])
			}
		}
		for i := strings.Index(f.text, "§"); i >= 0; {
			start := max(0, i-16)
			if !rfcSection.MatchString(f.text[start:i]) {
				end := min(len(f.text), i+8)
				t.Errorf("%s:%d: section sign outside an RFC citation: %q (cite docs/<file>.md#<section>)",
					f.rel, lineOf(f.text, i), f.text[start:end])
			}
			next := strings.Index(f.text[i+len("§"):], "§")
			if next < 0 {
				break
			}
			i += len("§") + next
		}
	}
}

// TestMentionedNamesExist: in the documents, every code span that names a
// repository path (`edge/handlers.go`, `test/chaos`) names one that
// exists, every qualified Go name (`dataplane.Plane`,
// `dataplane.Plane.Append`) is declared in that package, and every bare
// camel-case name (`flushAppends`, `TestDockerCluster`) is declared
// somewhere in the repository.
func TestMentionedNamesExist(t *testing.T) {
	files := repoFiles(t)
	topDirs := map[string]bool{}
	pkgs := map[string]names{} // by package directory name
	all := names{}
	for _, f := range files {
		dir, _, found := strings.Cut(f.rel, "/")
		if found {
			topDirs[dir] = true
		}
		if !strings.HasSuffix(f.rel, ".go") || path.Dir(f.rel) == "." {
			continue
		}
		all.add(f.text)
		if !strings.HasSuffix(f.rel, "_test.go") {
			name := path.Base(path.Dir(f.rel))
			if pkgs[name] == nil {
				pkgs[name] = names{}
			}
			pkgs[name].add(f.text)
		}
	}
	for _, f := range files {
		if !strings.HasSuffix(f.rel, ".md") {
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatchIndex(f.text, -1) {
			tok := strings.TrimSuffix(f.text[m[2]:m[3]], "/")
			line := lineOf(f.text, m[0])
			switch p, g := pathToken.FindStringSubmatch(tok), goNameToken.FindStringSubmatch(tok); {
			case p != nil && topDirs[p[1]]:
				if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(tok))); err != nil {
					t.Errorf("%s:%d: `%s`: no such file or directory", f.rel, line, tok)
				}
			case camelCase.MatchString(tok):
				if !all[tok] {
					t.Errorf("%s:%d: `%s`: not declared in the repository", f.rel, line, tok)
				}
			case g != nil && pkgs[g[1]] != nil:
				name := g[2]
				if g[3] != "" {
					name += "." + g[3]
				}
				if !pkgs[g[1]][name] {
					t.Errorf("%s:%d: `%s`: not declared in package %s", f.rel, line, tok, g[1])
				}
			}
		}
	}
}

// names are the identifiers declared in Go sources: functions, types,
// methods (as Type.Method and as Method), and the members of var, const
// and type blocks. It errs on the generous side: a name it misses would
// fail the test, one it adds too many only weakens it.
type names map[string]bool

var (
	funcDecl   = regexp.MustCompile(`(?m)^func (?:\(\w+ \*?(\w+)(?:\[[^\]]*\])?\) )?(\w+)`)
	simpleDecl = regexp.MustCompile(`(?m)^(?:type|var|const) (\w+)`)
	blockDecl  = regexp.MustCompile(`(?m)^\t(\w+)\b`)
)

func (n names) add(src string) {
	for _, m := range funcDecl.FindAllStringSubmatch(src, -1) {
		n[m[2]] = true
		if m[1] != "" {
			n[m[1]+"."+m[2]] = true
		}
	}
	for _, re := range []*regexp.Regexp{simpleDecl, blockDecl} {
		for _, m := range re.FindAllStringSubmatch(src, -1) {
			n[m[1]] = true
		}
	}
}

// TestReadmeIsShort: the README fits on a few screens.
func TestReadmeIsShort(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > maxReadmeLines {
		t.Errorf("README.md has %d lines, more than %d: move details to docs/", n, maxReadmeLines)
	}
}
