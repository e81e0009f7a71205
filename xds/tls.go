package xds

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ProxylessCertProvider is the name of the certificate provider instance
// that proxyless gRPC clients must define in their bootstrap
// ("certificate_providers"), a file_watcher over the app's SVID and the
// trust bundle. See ProxylessBootstrap.
const ProxylessCertProvider = "blockgate"

// sdsConfig refers to a secret served over the same ADS stream.
func sdsConfig(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

// upstreamTLS is the transport socket of a cluster whose peer must present
// the SPIFFE ID peer: the node presents its own SVID (secret self) and
// verifies the peer against the trust bundle (secret spiffe://<td>) with
// the peer's URI SAN matched exactly.
func (b *builder) upstreamTLS(self, peer, sni string, alpn []string) *core.TransportSocket {
	return b.transportSocket(&tlsv3.UpstreamTlsContext{
		Sni: sni,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  alpn,
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig(self)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tlsv3.CertificateValidationContext{
						MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
							SanType: tlsv3.SubjectAltNameMatcher_URI,
							Matcher: exact(peer),
						}},
					},
					ValidationContextSdsSecretConfig: sdsConfig(b.td.IDString()),
				},
			},
		},
	})
}

// staticUpstreamTLS is upstreamTLS without SDS, for the bootstrap's xDS
// cluster: the sidecar has no certificate yet, and verifies the server
// against the given bundle. ALPN h2, which grpc-go servers require.
func (b *builder) staticUpstreamTLS(peer, sni string, bundlePEM []byte) *core.TransportSocket {
	return b.transportSocket(&tlsv3.UpstreamTlsContext{
		Sni: sni,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols: []string{"h2"},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
				ValidationContext: &tlsv3.CertificateValidationContext{
					TrustedCa: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: string(bundlePEM)}},
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
						SanType: tlsv3.SubjectAltNameMatcher_URI,
						Matcher: exact(peer),
					}},
				},
			},
		},
	})
}

// downstreamTLS is the inbound listener's: a client certificate that
// chains to the trust bundle is required; which SPIFFE IDs get in is the
// RBAC filter's decision.
func (b *builder) downstreamTLS(self string) *core.TransportSocket {
	return b.transportSocket(&tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  []string{"h2", "http/1.1"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig(self)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sdsConfig(b.td.IDString()),
			},
		},
	})
}

// proxylessTLS is the transport socket of a proxyless client's cluster:
// gRPC takes its key material from certificate provider plugins, not SDS
// (gRFC A29), and matches SANs with match_subject_alt_names only.
func (b *builder) proxylessTLS(peer string) *core.TransportSocket {
	provider := &tlsv3.CertificateProviderPluginInstance{InstanceName: ProxylessCertProvider}
	return b.transportSocket(&tlsv3.UpstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateProviderInstance: provider,
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
				ValidationContext: &tlsv3.CertificateValidationContext{
					CaCertificateProviderInstance: provider,
					//lint:ignore SA1019 gRPC (v1.85) reads only the untyped matchers.
					MatchSubjectAltNames: []*matcherv3.StringMatcher{exact(peer)},
				},
			},
		},
	})
}

func (b *builder) transportSocket(ctx proto.Message) *core.TransportSocket {
	return &core.TransportSocket{
		Name:       wellknown.TransportSocketTLS,
		ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: b.any(ctx)},
	}
}

// secrets are the node's SDS resources: its certificate and key (named by
// its SPIFFE ID) and the trust bundle (named spiffe://<trust-domain>).
func (b *builder) secrets(self string, chainPEM, keyPEM, bundlePEM []byte) []*tlsv3.Secret {
	return []*tlsv3.Secret{
		{
			Name: self,
			Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: inlineBytes(chainPEM),
				PrivateKey:       inlineBytes(keyPEM),
			}},
		},
		{
			Name: b.td.IDString(),
			Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: inlineBytes(bundlePEM),
			}},
		},
	}
}

func inlineBytes(b []byte) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b}}
}
