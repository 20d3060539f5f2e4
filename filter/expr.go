package filter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/fanbridge/fanbridge"
)

// Defaults for CEL expressions.
const (
	// DefaultCostLimit bounds the work of one evaluation, in CEL cost units (roughly one per
	// operation and per element an operation walks). 100,000 allows comprehensions over every
	// element of a large Genesys body and stops a runaway nested one after about that many steps.
	DefaultCostLimit = 100_000
	// DefaultMaxExprSize bounds an expression's source, in Unicode code points.
	DefaultMaxExprSize = 4096
)

// Expression is a compiled CEL expression over an event. It implements Predicate and is safe for
// concurrent use.
//
// The expression sees two variables: data, the event body (Event.Data) as JSON values (objects
// as maps, arrays as lists, integers as int, other numbers as double), and event, with the typed
// fields id, type, topic, source (strings), time (a timestamp: the Unix epoch for an event without
// a time) and metadata (a map of strings).
type Expression struct {
	src    string
	prg    cel.Program
	logger *slog.Logger
}

// ExprOption configures Expr.
type ExprOption interface{ apply(*exprConfig) }

type exprConfig struct {
	costLimit uint64
	maxSize   int
	logger    *slog.Logger
}

type exprOptionFunc func(*exprConfig)

func (f exprOptionFunc) apply(c *exprConfig) { f(c) }

// WithCostLimit sets the cost limit of one evaluation; an evaluation that exceeds it is an
// evaluation error, so the event does not match. The default is DefaultCostLimit (100,000).
func WithCostLimit(n uint64) ExprOption {
	return exprOptionFunc(func(c *exprConfig) { c.costLimit = n })
}

// WithMaxExprSize sets the longest expression source accepted, in code points. The default is
// DefaultMaxExprSize (4096).
func WithMaxExprSize(n int) ExprOption {
	return exprOptionFunc(func(c *exprConfig) { c.maxSize = n })
}

// WithExprLogger makes evaluation errors (a missing field, a wrong type, the cost limit) be
// logged at debug level with the expression, the event id and the error's reason, one of the
// fixed phrases EvalError.Reason lists; never a value from the body. The default is silence.
func WithExprLogger(l *slog.Logger) ExprOption {
	return exprOptionFunc(func(c *exprConfig) { c.logger = l })
}

var (
	baseEnvOnce sync.Once
	baseEnv     *cel.Env
	baseEnvErr  error
)

func celEnv(maxSize int) (*cel.Env, error) {
	baseEnvOnce.Do(func() {
		baseEnv, baseEnvErr = cel.NewEnv(
			cel.Variable("data", cel.DynType),
			ext.NativeTypes(reflect.TypeFor[celEvent](), ext.ParseStructTags(true)),
			cel.Variable("event", cel.ObjectType("filter.celEvent")),
			cel.CrossTypeNumericComparisons(true),
			cel.ParserExpressionSizeLimit(DefaultMaxExprSize),
		)
	})
	if baseEnvErr != nil || maxSize == DefaultMaxExprSize {
		return baseEnv, baseEnvErr
	}
	return baseEnv.Extend(cel.ParserExpressionSizeLimit(maxSize))
}

// Expr compiles a CEL expression, such as
//
//	data.mediaType == 'CHAT' && data.interactingDurationMs > 120000
//
// Parse and type errors, a result type other than bool (or dyn, checked when evaluated), and a
// source longer than the size limit are reported here, wrapping ErrInvalidExpression.
func Expr(src string, opts ...ExprOption) (*Expression, error) {
	cfg := exprConfig{costLimit: DefaultCostLimit, maxSize: DefaultMaxExprSize}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if cfg.maxSize <= 0 {
		return nil, fmt.Errorf("%w: the size limit must be positive", ErrInvalidExpression)
	}
	env, err := celEnv(cfg.maxSize)
	if err != nil {
		return nil, fmt.Errorf("filter: CEL environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidExpression, iss.Err())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("%w: the expression gives %s, not bool", ErrInvalidExpression, t)
	}
	popts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	// Tracking cost slows every step down (several times over in comprehensions), so it is only
	// switched on when the worst case of the expression, sizes unknown, could exceed the limit.
	if est, err := env.EstimateCost(ast, noSizeHints{}); err != nil || est.Max > cfg.costLimit {
		popts = append(popts, cel.CostLimit(cfg.costLimit))
	}
	prg, err := env.Program(ast, popts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidExpression, err)
	}
	x := &Expression{src: src, prg: prg, logger: cfg.logger}
	return x, nil
}

// MustExpr is Expr for expressions known to be valid; it panics on error.
func MustExpr(src string, opts ...ExprOption) *Expression {
	x, err := Expr(src, opts...)
	if err != nil {
		panic(err)
	}
	return x
}

// String returns the expression's source.
func (x *Expression) String() string {
	if x == nil {
		return ""
	}
	return x.src
}

// Match reports whether the expression is true for e. An evaluation error (a missing field, a
// wrong type, a body that is not JSON, the cost limit) means no match, and a nil *Expression
// matches nothing.
func (x *Expression) Match(e *fanbridge.Event) bool {
	if x == nil {
		return false
	}
	return x.match(e, newActivation(e))
}

// match is eval without building an error nobody reads.
func (x *Expression) match(e *fanbridge.Event, act *activation) bool {
	if x == nil {
		return false
	}
	if x.logger == nil {
		out, _, err := x.prg.Eval(act)
		b, ok := out.(types.Bool)
		return err == nil && ok && bool(b)
	}
	ok, _ := x.eval(e, act)
	return ok
}

// Eval is Match that also returns the evaluation error, an *EvalError, for tools and tests.
func (x *Expression) Eval(e *fanbridge.Event) (bool, error) {
	if x == nil {
		return false, &EvalError{Reason: "the expression is nil", Err: ErrInvalidExpression}
	}
	return x.eval(e, newActivation(e))
}

// EvalError is the error of an evaluation that did not give true or false. Its message names the
// expression and the reason and nothing else, so it may be logged: CEL's own messages quote
// values from the body (a map key, a string that is not a timestamp or not a regular expression),
// which may be secrets.
type EvalError struct {
	// Expr is the expression's source.
	Expr string
	// Reason is one of "the event has no body", "the event body is not JSON", "the event body
	// is nested too deep" (deeper than 512 levels), "the event body has a number too large for a
	// double" (beyond ±1.8e308, such as 1e400), "the cost limit was exceeded", "a field or key is
	// missing", "a value has the wrong type", "an index is out of range", "division by zero", "a number is out of range", "a string has the wrong form",
	// "the result is not a bool", "the expression is nil" (for a nil *Expression, with Err
	// ErrInvalidExpression) and, for anything else, "the evaluation failed".
	Reason string
	// Err is CEL's error, wrapping the body's decoding error (and ErrInvalidEvent) when the body
	// is refused. Its message may quote values from the body: show it only to whoever may see
	// the event.
	Err error
}

// Error formats the error as `filter: evaluating "expr": reason`.
func (e *EvalError) Error() string {
	return "filter: evaluating " + strconv.Quote(e.Expr) + ": " + e.Reason
}

// Unwrap returns Err.
func (e *EvalError) Unwrap() error { return e.Err }

var errNoBody = errors.New("the event has no body")

// evalReasons maps the start of CEL's evaluation error messages to the fixed reasons of
// EvalError, so that the part of the message that may come from the body is never kept.
var evalReasons = []struct{ prefix, reason string }{
	{"no such key", "a field or key is missing"},
	{"no such attribute", "a field or key is missing"},
	{"no such field", "a field or key is missing"},
	{"no such overload", "a value has the wrong type"},
	{"no matching overload", "a value has the wrong type"},
	{"type conversion error", "a value has the wrong type"},
	{"unsupported index type", "a value has the wrong type"},
	{"index out of bounds", "an index is out of range"},
	{"unsupported index value", "an index is out of range"},
	{"division by zero", "division by zero"},
	{"modulus by zero", "division by zero"},
	{"integer overflow", "a number is out of range"},
	{"unsigned integer overflow", "a number is out of range"},
	{"duration overflow", "a number is out of range"},
	{"timestamp overflow", "a number is out of range"},
	{"invalid RFC 3339 timestamp", "a string has the wrong form"},
	{"error parsing regexp", "a string has the wrong form"},
}

// evalReason says in a fixed phrase why an evaluation failed with err.
func evalReason(err error, act *activation) string {
	switch {
	case act.askedData && errors.Is(act.err, errNoBody):
		return "the event has no body"
	case act.askedData && errors.Is(act.err, errBodyTooDeep):
		return "the event body is nested too deep"
	case act.askedData && errors.Is(act.err, errBodyNumberRange):
		return "the event body has a number too large for a double"
	case act.askedData && act.err != nil:
		return "the event body is not JSON"
	case errors.As(err, new(interpreter.EvalCancelledError)):
		return "the cost limit was exceeded"
	}
	msg := err.Error()
	for _, r := range evalReasons {
		if strings.HasPrefix(msg, r.prefix) {
			return r.reason
		}
	}
	return "the evaluation failed"
}

func (x *Expression) eval(e *fanbridge.Event, act *activation) (bool, error) {
	// MatchExprs shares act, and with it a body's decoding error, among expressions: only one
	// that asked for data failed because of it.
	act.askedData = false
	out, _, err := x.prg.Eval(act)
	reason := ""
	if err == nil {
		if b, ok := out.Value().(bool); ok {
			return b, nil
		}
		err = fmt.Errorf("the expression gave %s, not bool", out.Type())
		reason = "the result is not a bool"
	} else {
		reason = evalReason(err, act)
	}
	if act.askedData && act.err != nil {
		err = fmt.Errorf("%w (data: %w)", err, act.err)
	}
	if x.logger != nil && e != nil {
		x.logger.LogAttrs(context.Background(), slog.LevelDebug, "CEL expression did not evaluate",
			slog.String("expr", x.src), slog.String("event_id", e.ID), slog.String("reason", reason))
	}
	return false, &EvalError{Expr: x.src, Reason: reason, Err: err}
}

// MatchExprs appends to dst the indexes of the expressions that are true for e, decoding the
// event body once for all of them, and returns the extended slice. A nil entry matches nothing.
func MatchExprs(e *fanbridge.Event, exprs []*Expression, dst []int) []int {
	act := newActivation(e)
	for i, x := range exprs {
		if x.match(e, act) {
			dst = append(dst, i)
		}
	}
	return dst
}

// celEvent is what the event variable holds: typed fields, so that a misuse such as
// event.type + 1 is caught when the expression compiles.
type celEvent struct {
	ID       string            `cel:"id"`
	Type     string            `cel:"type"`
	Topic    string            `cel:"topic"`
	Source   string            `cel:"source"`
	Time     time.Time         `cel:"time"`
	Metadata map[string]string `cel:"metadata"`
}

// noSizeHints leaves every size unknown, so cost estimates are worst cases.
type noSizeHints struct{}

func (noSizeHints) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }

func (noSizeHints) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// activation supplies data and event to an evaluation, decoding each the first time the
// expression asks for it: an expression on event.type never decodes the body.
type activation struct {
	e        *fanbridge.Event
	data     any
	dataDone bool
	event    *celEvent
	err      error
	// askedData says the evaluation under way resolved data; eval resets it.
	askedData bool
}

var _ interpreter.Activation = (*activation)(nil)

func newActivation(e *fanbridge.Event) *activation {
	if e == nil {
		e = &fanbridge.Event{}
	}
	return &activation{e: e}
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "data":
		a.askedData = true
		if !a.dataDone {
			a.dataDone = true
			if len(a.e.Data) == 0 {
				a.err = errNoBody
				return nil, false
			}
			v, err := decodeJSON(a.e.Data)
			if err != nil {
				a.err = err
				return nil, false
			}
			a.data = v
		}
		if a.data == nil && a.err != nil {
			return nil, false
		}
		return a.data, true
	case "event":
		if a.event == nil {
			md := a.e.Metadata
			if md == nil {
				md = map[string]string{}
			}
			a.event = &celEvent{ID: a.e.ID, Type: a.e.Type, Topic: a.e.Topic, Source: a.e.Source, Time: a.e.Time, Metadata: md}
		}
		return a.event, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }
