package xds

import (
	"crypto/sha256"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
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

// validated remembers the resources of one tenant that passed ValidateDeep,
// so that a rebuild validates only what changed: at a change of one app's
// instances, the endpoints of that app's cluster, not the whole
// configuration of every app. A resource is known by its type and a
// SHA-256 of its deterministic encoding, the bytes that its version is
// hashed from: ValidateDeep depends on the message alone, and equal
// encodings are equal messages (Any contents and unknown fields
// included). A resource that fails is not remembered, so it is refused at
// every build.
//
// It keeps two generations, to hold only the resources in use: next
// starts one when the tenant's configuration is rebuilt, a resource found
// in the previous one is carried over, and forget drops what the rebuild
// did not carry over. A validated is used under Server.buildMu.
type validated struct {
	cur, prev map[validKey]struct{}
	// runs counts the calls of ValidateDeep, for tests.
	runs int
}

type validKey struct {
	t   types.ResponseType
	sum [sha256.Size]byte
}

func newValidated() *validated {
	return &validated{cur: map[validKey]struct{}{}}
}

// validate checks r, whose deterministic encoding is raw, unless it
// passed before. A nil v validates every time.
func (v *validated) validate(t types.ResponseType, r types.Resource, raw []byte) error {
	if v == nil {
		return ValidateDeep(r)
	}
	k := validKey{t: t, sum: sha256.Sum256(raw)}
	if _, ok := v.cur[k]; ok {
		return nil
	}
	if _, ok := v.prev[k]; ok {
		v.cur[k] = struct{}{}
		return nil
	}
	v.runs++
	if err := ValidateDeep(r); err != nil {
		return err
	}
	v.cur[k] = struct{}{}
	return nil
}

// next starts a generation: the resources validated before are kept until
// forget or the next call, unless a build uses them again.
func (v *validated) next() {
	v.prev, v.cur = v.cur, make(map[validKey]struct{}, len(v.cur))
}

// forget drops the resources that no build used since next.
func (v *validated) forget() { v.prev = nil }

// size is how many resources v remembers.
func (v *validated) size() int { return len(v.cur) + len(v.prev) }

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}
