package xds

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	// The typed configs that resources carry in Any fields, registered so
	// that ValidateDeep can unpack them.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// validatorAll is what protoc-gen-validate generates for every Envoy API
// message.
type validatorAll interface {
	ValidateAll() error
}

// ValidateDeep checks m with its generated ValidateAll, and then every
// message packed in an Any anywhere inside it (an HttpConnectionManager in
// a listener's filter, the RBAC and Router filters inside that, a TLS
// context in a transport socket, ...), recursively: ValidateAll checks an
// Any's type URL but not its content. An Any whose type is not linked into
// the binary is an error, since it could not be checked. The error names
// the path of the field that failed.
func ValidateDeep(m proto.Message) error {
	return validateDeep(m, "")
}

func validateDeep(m proto.Message, path string) error {
	if v, ok := m.(validatorAll); ok {
		if err := v.ValidateAll(); err != nil {
			return wrapPath(path, err)
		}
	}
	return walk(m.ProtoReflect(), path)
}

func wrapPath(path string, err error) error {
	if path == "" {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// walk looks for Any fields below m.
func walk(m protoreflect.Message, path string) error {
	if m.Descriptor().FullName() == "google.protobuf.Any" {
		a, ok := m.Interface().(*anypb.Any)
		if !ok {
			return wrapPath(path, fmt.Errorf("an Any of Go type %T", m.Interface()))
		}
		inner, err := a.UnmarshalNew()
		if err != nil {
			return wrapPath(path, fmt.Errorf("unpacking %s: %w", a.GetTypeUrl(), err))
		}
		return validateDeep(inner, fmt.Sprintf("%s(%s)", path, inner.ProtoReflect().Descriptor().FullName()))
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		at := join(path, string(fd.Name()))
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = walk(l.Get(i).Message(), fmt.Sprintf("%s[%d]", at, i))
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = walk(mv.Message(), fmt.Sprintf("%s[%v]", at, k.Interface()))
				return err == nil
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			err = walk(v.Message(), at)
		}
		return err == nil
	})
	return err
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}
