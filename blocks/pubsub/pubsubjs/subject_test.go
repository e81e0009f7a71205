package pubsubjs

import (
	"hash/fnv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/blockgate/blockgate/tenants"
)

// hostileTopics are topic names that must stay one token of their own.
var hostileTopics = []string{
	"", " ", "  ", "_", "__", "_5F", "-", ".", "..", "a.b", "a..b", ".a", "a.", "*", ">", "a.*", "a.>",
	"t.other.x", "t.tenant-b.ps.orders._", "a b", "a\tb", "a\r\nb", "a/b", `a\b`, "a:b", "\x00", "\xff",
	"é", "日本語", "🙂", "orders", "Orders", "order_created", "order-created", "%2E", "_2E",
}

// validToken reports whether tok is one valid NATS subject token that no
// wildcard can hide in: non-empty, no '.', '*', '>' or whitespace; and only
// the characters escapeToken emits.
func validToken(tok string) bool {
	if tok == "" {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if !unreserved(tok[i]) && tok[i] != '_' {
			return false
		}
	}
	return true
}

func TestEscapeToken(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "_"},
		{"plain", "orders", "orders"},
		{"dns label", "order-created-2", "order-created-2"},
		{"upper case", "Orders", "Orders"},
		{"underscore", "_", "_5F"},
		{"escaped-looking", "_5F", "_5F5F"},
		{"dot", "a.b", "a_2Eb"},
		{"star", "*", "_2A"},
		{"gt", ">", "_3E"},
		{"space", "a b", "a_20b"},
		{"slash", "a/b", "a_2Fb"},
		{"unicode", "é", "_C3_A9"},
		{"nul", "\x00", "_00"},
		{"subject-like", "t.other.x", "t_2Eother_2Ex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := escapeToken(tt.in); got != tt.want {
				t.Errorf("escapeToken(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestHostileTopicsStayInTheirSubject(t *testing.T) {
	seen := map[string]string{}
	for _, topic := range hostileTopics {
		tok, err := topicToken(topic)
		if err != nil {
			t.Fatalf("topicToken(%q): %v", topic, err)
		}
		if !validToken(tok) {
			t.Errorf("topic %q: token %q is not one plain token", topic, tok)
		}
		if other, ok := seen[tok]; ok {
			t.Errorf("topics %q and %q share the token %q", topic, other, tok)
		}
		seen[tok] = topic
		for _, part := range []string{unkeyedPart, partToken(3)} {
			subj := subject("tenant-a", topicScope("ps", tok), part)
			if !strings.HasPrefix(subj, "t.tenant-a.ps.") || strings.Count(subj, ".") != 4 {
				t.Errorf("topic %q: subject %q leaves t.tenant-a.ps.<topic>.<part>", topic, subj)
			}
		}
	}
}

func TestTopicTooLong(t *testing.T) {
	if _, err := topicToken(strings.Repeat("a", maxTokenLen)); err != nil {
		t.Errorf("%d plain bytes: %v", maxTokenLen, err)
	}
	if _, err := topicToken(strings.Repeat(".", maxTokenLen/3+1)); err == nil {
		t.Error("a topic escaping to more than maxTokenLen bytes was accepted")
	}
}

func TestPartition(t *testing.T) {
	if got := partition("", 8); got != unkeyedPart {
		t.Errorf("no key: part %q, want %q", got, unkeyedPart)
	}
	// Stable across processes and releases: the mapping must never change.
	for key, want := range map[string]string{"a": "p4", "order-1": "p5", "k0": "p6"} {
		if got := partition(key, 8); got != want {
			t.Errorf("partition(%q, 8) = %q, want %q", key, got, want)
		}
	}
	counts := map[string]int{}
	for i := range 8000 {
		counts[partition(strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune(i)), 8)]++
	}
	if len(counts) != 8 {
		t.Errorf("8000 keys used %d of 8 partitions: %v", len(counts), counts)
	}
}

func TestConsumerName(t *testing.T) {
	long := strings.Repeat("x.y*z>", 100)
	tests := []struct {
		name                 string
		pubsub, topic, group string
	}{
		{"plain", "pubsub", "orders", "app1"},
		{"hostile", "pubsub", "a.b *>\t/\\", "app.one"},
		{"long", long, long, long},
		{"empty", "", "", ""},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, part := range []string{"u", "p0", "p1023"} {
				name := consumerName(tt.pubsub, tt.topic, tt.group, part)
				checkConsumerName(t, name)
				if seen[name] {
					t.Errorf("name %q is used twice", name)
				}
				seen[name] = true
			}
		})
	}
	// Names that differ only where the readable prefix cannot show it.
	if consumerName("ps", "a.b", "g", "u") == consumerName("ps", "a*b", "g", "u") {
		t.Error("topics a.b and a*b share a consumer")
	}
	if consumerName("ps", "ab", "c", "u") == consumerName("ps", "a", "bc", "u") {
		t.Error("(ab, c) and (a, bc) share a consumer")
	}
}

func checkConsumerName(t *testing.T, name string) {
	t.Helper()
	if len(name) > 100 || !validToken(name) {
		t.Errorf("consumer name %q (%d bytes) is not a short name of [A-Za-z0-9_-]", name, len(name))
	}
}

// FuzzEscapeToken: escaping is injective (it decodes back), yields one
// valid token, and keeps every subject inside its tenant's prefix.
func FuzzEscapeToken(f *testing.F) {
	for _, s := range hostileTopics {
		f.Add(s, "x")
	}
	f.Add("_2E", ".")
	f.Fuzz(func(t *testing.T, a, b string) {
		ta, tb := escapeToken(a), escapeToken(b)
		if !validToken(ta) {
			t.Fatalf("escapeToken(%q) = %q is not one valid token", a, ta)
		}
		back, err := unescapeToken(ta)
		if err != nil || back != a {
			t.Fatalf("unescapeToken(escapeToken(%q)) = %q, %v", a, back, err)
		}
		if (a == b) != (ta == tb) {
			t.Fatalf("escapeToken(%q) = %q, escapeToken(%q) = %q", a, ta, b, tb)
		}
		subj := subject("tenant-a", topicScope("ps", ta), unkeyedPart)
		if want := "t.tenant-a.ps." + ta + "._"; subj != want || strings.Count(subj, ".") != 4 {
			t.Fatalf("subject %q, want %q", subj, want)
		}
		checkConsumerName(t, consumerName(a, b, a+b, "p7"))
		h := fnv.New32a()
		h.Write([]byte(a))
		if got, want := fnv1a(a), h.Sum32(); got != want {
			t.Fatalf("fnv1a(%q) = %d, hash/fnv says %d", a, got, want)
		}
	})
}

// FuzzHeaderValue: every string survives the header encoding, and what is
// sent is a value NATS does not alter.
func FuzzHeaderValue(f *testing.F) {
	for _, s := range append(hostileTopics, "b64:", "b64:AAAA", " lead", "trail ", "\x7f", "a\nb") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		enc := encodeValue(v)
		if !utf8.ValidString(enc) || strings.TrimSpace(enc) != enc || strings.ContainsAny(enc, "\r\n") {
			t.Fatalf("encodeValue(%q) = %q would be altered by NATS", v, enc)
		}
		dec, err := decodeValue(enc)
		if err != nil || dec != v {
			t.Fatalf("decodeValue(encodeValue(%q)) = %q, %v", v, dec, err)
		}
	})
}

func TestInvalidTenant(t *testing.T) {
	b := &Broker{streams: map[tenants.ID]*tenantStream{}}
	for _, id := range []tenants.ID{"", "A", "a.b", "a*", ">", "t.x", "a b", "-a"} {
		if _, err := b.tenantStream(id); err == nil {
			t.Errorf("tenant %q accepted", id)
		}
	}
	if _, err := b.tenantStream("tenant-a"); err != nil {
		t.Errorf("tenant-a: %v", err)
	}
}
