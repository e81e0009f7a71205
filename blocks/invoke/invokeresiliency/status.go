package invokeresiliency

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Protocol tells how a Status code reads.
type Protocol uint8

const (
	// NoAnswer: the attempt got no status from the app (it could not be
	// reached, the connection broke, the attempt timed out).
	NoAnswer Protocol = iota
	// HTTP: Code is an HTTP status.
	HTTP
	// GRPC: Code is a gRPC status code (google.golang.org/grpc/codes).
	GRPC
)

// Status is the app's answer to one attempt. The zero Status is NoAnswer.
type Status struct {
	Protocol Protocol
	Code     int
}

// HTTPStatus is the answer of an app spoken to over HTTP.
func HTTPStatus(code int) Status { return Status{Protocol: HTTP, Code: code} }

// GRPCStatus is the answer of an app spoken to over gRPC; pass a
// codes.Code, whose underlying type is uint32.
func GRPCStatus[C ~uint32](code C) Status { return Status{Protocol: GRPC, Code: int(code)} }

// Answered reports whether the app gave a status at all.
func (s Status) Answered() bool { return s.Protocol != NoAnswer }

// Succeeded reports whether the status counts as a success, as daprd
// counts it: an HTTP status from 200 to 399, or gRPC OK. Anything else,
// 4xx included, is a failure for the circuit breaker and a candidate for a
// retry, subject to the retry policy's matching.
func (s Status) Succeeded() bool {
	switch s.Protocol {
	case HTTP:
		return s.Code >= 200 && s.Code <= 399
	case GRPC:
		return s.Code == 0
	}
	return false
}

func (s Status) String() string {
	switch s.Protocol {
	case HTTP:
		return "HTTP " + strconv.Itoa(s.Code)
	case GRPC:
		return "gRPC code " + strconv.Itoa(s.Code)
	}
	return "no answer"
}

// CodeRange is an inclusive range of status codes; a single code has From
// == To.
type CodeRange struct{ From, To int }

// Matching is a retry policy's matching: the failing statuses it retries.
// A nil list retries every failing status of its protocol (daprd's default
// when the field is absent or empty). A failure without a status (the app
// could not be reached, the attempt timed out) always matches.
type Matching struct {
	HTTP []CodeRange
	GRPC []CodeRange
}

// Matches reports whether a failing status s is to be retried.
func (m Matching) Matches(s Status) bool {
	var ranges []CodeRange
	switch s.Protocol {
	case HTTP:
		ranges = m.HTTP
	case GRPC:
		ranges = m.GRPC
	default:
		return true
	}
	if ranges == nil {
		return true
	}
	for _, r := range ranges {
		if r.From <= s.Code && s.Code <= r.To {
			return true
		}
	}
	return false
}

// The codes a matching list may name, as daprd validates them.
var (
	httpCodes = CodeRange{100, 599}
	grpcCodes = CodeRange{0, 16}
)

// parseCodes reads a status code list as daprd does: comma-separated codes
// or from-to ranges within valid, empty entries ignored ("500,,502"). An
// empty list means every code (nil). A list of nothing but commas is
// refused: daprd would read it as "retry no status", which is surely not
// what was meant.
func parseCodes(field, s string, valid CodeRange) ([]CodeRange, error) {
	if s == "" {
		return nil, nil
	}
	var out []CodeRange
	for p := range strings.SplitSeq(s, ",") {
		if p == "" {
			continue
		}
		from, to, isRange := strings.Cut(p, "-")
		if !isRange {
			to = from
		}
		lo, err1 := strconv.Atoi(from)
		hi, err2 := strconv.Atoi(to)
		if err1 != nil || err2 != nil || strings.Contains(to, "-") {
			return nil, fmt.Errorf("%s: %q is not a code or a from-to range of codes", field, p)
		}
		if lo < valid.From || lo > valid.To || hi < valid.From || hi > valid.To {
			return nil, fmt.Errorf("%s: %q is outside the valid codes %d-%d", field, p, valid.From, valid.To)
		}
		if hi < lo {
			return nil, fmt.Errorf("%s: %q ends before it starts", field, p)
		}
		out = append(out, CodeRange{lo, hi})
	}
	if out == nil {
		return nil, fmt.Errorf("%s: %q lists no codes; leave it out to retry every failing status", field, s)
	}
	return out, nil
}

// IdempotentMethod reports whether an HTTP method is idempotent (RFC 9110
// 9.2.2), so that a request with it may be marked Replayable once its body
// is known to be replayable.
func IdempotentMethod(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// DialFailed reports whether err is a failure to connect (the dial was
// refused, the name did not resolve, the dial timed out): the request did
// not leave, so an Outcome for it may be marked Unsent.
func DialFailed(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
