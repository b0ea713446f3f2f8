package task

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Port is one exposed port: `8888`, or `{port: 8000, public: true}`.
type Port struct {
	Port   int  `yaml:"port" json:"port"`
	Public bool `yaml:"public,omitempty" json:"public,omitempty"`
}

// UnmarshalYAML reads either form.
func (p *Port) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&p.Port)
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a port is a number or {port: N, public: true}", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; k != "port" && k != "public" {
			return fmt.Errorf("line %d: unknown field %q of a port (known: port, public)", n.Content[i].Line, k)
		}
	}
	type plain Port
	return n.Decode((*plain)(p))
}

// MarshalYAML writes the short form where it says everything.
func (p Port) MarshalYAML() (any, error) {
	if !p.Public {
		return p.Port, nil
	}
	type plain Port
	return plain(p), nil
}
