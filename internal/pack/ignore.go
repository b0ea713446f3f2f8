package pack

import (
	"bufio"
	"io"
	"path"
	"strings"
)

// rule is one line of a .gitignore or .iogignore file.
type rule struct {
	base    string   // the directory of the ignore file, relative to the root ("" for the root)
	segs    []string // the pattern split on /; "**" matches any number of segments
	negate  bool
	dirOnly bool
}

// maxIgnoreFile bounds an ignore file that is read.
const maxIgnoreFile = 1 << 20

// parseIgnore reads the rules of one ignore file in directory base.
func parseIgnore(base string, r io.Reader) []rule {
	var rules []rule
	sc := bufio.NewScanner(io.LimitReader(r, maxIgnoreFile))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var ru rule
		ru.base = base
		if strings.HasPrefix(line, "!") {
			ru.negate = true
			line = line[1:]
		} else if strings.HasPrefix(line, `\`) {
			line = line[1:] // \# and \! are literal
		}
		if strings.HasSuffix(line, "/") {
			ru.dirOnly = true
			line = strings.TrimRight(line, "/")
		}
		anchored := strings.Contains(line, "/")
		line = strings.TrimPrefix(line, "/")
		if line == "" {
			continue
		}
		if !anchored {
			line = "**/" + line
		}
		ru.segs = strings.Split(line, "/")
		rules = append(rules, ru)
	}
	return rules
}

// ignored reports whether rel (slash-separated, relative to the root) is ignored by rules, the
// last matching rule deciding, as in git.
func ignored(rules []rule, rel string, isDir bool) bool {
	out := false
	for _, ru := range rules {
		if ru.dirOnly && !isDir {
			continue
		}
		p := rel
		if ru.base != "" {
			rest, ok := strings.CutPrefix(rel, ru.base+"/")
			if !ok {
				continue
			}
			p = rest
		}
		if matchSegs(ru.segs, strings.Split(p, "/")) {
			out = !ru.negate
		}
	}
	return out
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			pat = pat[1:]
			if len(pat) == 0 {
				return true
			}
			for i := range len(name) + 1 {
				if matchSegs(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		ok, err := path.Match(pat[0], name[0])
		if err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
