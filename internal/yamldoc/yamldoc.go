// Package yamldoc checks that a resource file holds one YAML document.
// sigs.k8s.io/yaml reads only the first document of a stream and silently
// drops the rest, so a file with two resources would apply half of what
// its author meant; the resource parsers call One before decoding.
package yamldoc

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	yamlv2 "go.yaml.in/yaml/v2"
)

// ErrSeveral is returned for a stream of more than one document.
var ErrSeveral = errors.New("the YAML holds more than one document; give one resource at a time")

// One returns nil when data holds at most one non-empty YAML document (a
// trailing "---" does not count, nor does JSON, which is one document). A
// syntax error in the first document is left to the caller's decoder,
// which reports it better; one after the first is returned.
func One(data []byte) error {
	dec := yamlv2.NewDecoder(bytes.NewReader(data))
	n := 0
	for {
		var v any
		err := dec.Decode(&v)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil && n == 0:
			return nil
		case err != nil:
			return fmt.Errorf("after the first document: %w", err)
		}
		if v != nil {
			n++
		}
		if n > 1 {
			return ErrSeveral
		}
	}
}
