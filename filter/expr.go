package filter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
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
	// DefaultTimeLimit bounds the time of one evaluation of an expression whose cost is tracked.
	// It sits above the longest the default cost limit lets an evaluation run on a body of up to
	// 260 KiB (eventbridge's default limit): on the two-core machine that measured it, 3 to 6 s
	// for exists_one or filter comparing each of 130,000 numbers (or map with a filter) before
	// the cost limit stopped them, and under 1.5 s for exists or all (see WithTimeLimit).
	DefaultTimeLimit = 10 * time.Second
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
	// tracked says the program tracks its cost.
	tracked bool
	// timeLimit bounds an evaluation of a program that tracks its cost and holds a
	// comprehension; it is zero for any other, which runs without a timer.
	timeLimit time.Duration
}

// ExprOption configures Expr.
type ExprOption interface{ apply(*exprConfig) }

type exprConfig struct {
	costLimit uint64
	timeLimit time.Duration
	maxSize   int
	logger    *slog.Logger
}

type exprOptionFunc func(*exprConfig)

func (f exprOptionFunc) apply(c *exprConfig) { f(c) }

// WithCostLimit sets the cost limit of one evaluation; an evaluation that exceeds it is an
// evaluation error, so the event does not match. The cost limit is the bound to rely on: it
// stops an evaluation of a given expression on a given event at the same point on every machine
// and every run. Cost is tracked only for expressions whose worst case, with every size in the
// body unknown, could exceed the limit. Those are many, such as every comprehension over data;
// ==, != or `in` between two values that are not constants, or list and map literals holding
// them ([data.a] == [data.b], data.a == data.b, event.metadata == data.m, type(data) == map);
// `in` on a list of the body ('q1' in data.ids); and work on strings CEL cannot size before it
// sees them (string(data.s) == 'x', data.s.matches('a+')). An ==, != or `in` whose operands
// hold more than the limit allows is refused before it compares them. Tracking
// makes a comprehension slow down as it goes, its time growing with the square of its steps:
// with a limit well above the default, raise WithTimeLimit too. The default is
// DefaultCostLimit (100,000).
func WithCostLimit(n uint64) ExprOption {
	return exprOptionFunc(func(c *exprConfig) { c.costLimit = n })
}

// WithTimeLimit sets how long one evaluation of an expression whose cost is tracked (see
// WithCostLimit) may run; an evaluation still running then stops, an evaluation error, so the
// event does not match. Where it falls depends on the machine and its load, so an event near it
// may match on one run and not on another: it must sit above the longest the cost limit lets an
// evaluation run, so that the cost limit, the same on every machine and run, decides (raise it
// with the cost limit). It is only a safety net against evaluations that run long whatever the
// load: CEL's cost tracker slows a comprehension down with the square of its steps, and steps
// it charges nothing for (data.ids.exists_one(i, false)) are never stopped by the cost limit.
// It is checked between the iterations of comprehensions, so an evaluation may overrun it by a
// few of them; expressions whose cost is not tracked (those whose worst case fits the cost
// limit) and tracked expressions without a comprehension run without it. Expr refuses a limit
// that is not positive. The default is DefaultTimeLimit (10 s).
func WithTimeLimit(d time.Duration) ExprOption {
	return exprOptionFunc(func(c *exprConfig) { c.timeLimit = d })
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
	cfg := exprConfig{costLimit: DefaultCostLimit, timeLimit: DefaultTimeLimit, maxSize: DefaultMaxExprSize}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if cfg.maxSize <= 0 {
		return nil, fmt.Errorf("%w: the size limit must be positive", ErrInvalidExpression)
	}
	if cfg.timeLimit <= 0 {
		return nil, fmt.Errorf("%w: the time limit must be positive, not %v", ErrInvalidExpression, cfg.timeLimit)
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
	x := &Expression{src: src, logger: cfg.logger}
	// Tracking cost slows every step down (several times over in comprehensions), so it is only
	// switched on when the worst case of the expression, sizes unknown, could exceed the limit.
	// CEL's tracker also slows down as a comprehension goes on (it searches a stack that grows
	// with the steps taken), so such a program also runs under the time limit if it holds a
	// comprehension: the limit is looked at between iterations and nowhere else, and a timer
	// elsewhere would cost every evaluation without ever stopping one.
	if est, err := env.EstimateCost(ast, worstCase{ast.NativeRep()}); err != nil || est.Max > cfg.costLimit {
		popts = append(popts, cel.CostLimit(cfg.costLimit), cel.CostTracking(deepCosts{limit: cfg.costLimit}),
			cel.CustomDecorator(boundComparisons(cfg.costLimit)))
		x.tracked = true
		if hasComprehension(ast.NativeRep().Expr()) {
			popts = append(popts, cel.InterruptCheckFrequency(interruptEvery))
			x.timeLimit = cfg.timeLimit
		}
	}
	prg, err := env.Program(ast, popts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidExpression, err)
	}
	x.prg = prg
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
		out, err := x.run(act)
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
	// double" (beyond ±1.8e308, such as 1e400), "the cost limit was exceeded", "the time limit
	// was exceeded", "a field or key is missing", "a value has the wrong type", "an index is out
	// of range", "division by zero", "a number is out of range", "a string has the wrong form",
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

// errTimeLimit is the cause of the context of an evaluation that ran out of time.
var errTimeLimit = errors.New("the time limit was exceeded")

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
	case errors.Is(err, errTimeLimit):
		return "the time limit was exceeded"
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

// run evaluates the program on act, under the time limit when the program tracks its cost.
func (x *Expression) run(act *activation) (ref.Val, error) {
	if x.timeLimit == 0 {
		out, _, err := x.prg.Eval(act)
		return out, err
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), x.timeLimit, errTimeLimit)
	defer cancel()
	out, _, err := x.prg.ContextEval(ctx, act)
	if err == nil && ctx.Err() != nil {
		// The interrupt ends a comprehension with an error value, which an operator such as
		// `|| true` absorbs: the answer would not be the expression's.
		return nil, context.Cause(ctx)
	}
	return out, err
}

func (x *Expression) eval(e *fanbridge.Event, act *activation) (bool, error) {
	// MatchExprs shares act, and with it a body's decoding error, among expressions: only one
	// that asked for data failed because of it.
	act.askedData = false
	out, err := x.run(act)
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

// worstCase estimates the worst case of an expression's cost: it leaves every size unknown,
// and makes ==, != and `in` unbounded where both sides may hold lists or maps of the body.
// CEL's own estimate counts only the top-level size of a list or map literal, so
// [data.a, data.b] == [data.c, data.d] would be two units where it walks all that a to d hold.
type worstCase struct{ ast *celast.AST }

func (worstCase) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }

// EstimateCallCost returns an unbounded cost for ==, != and `in` whose operands may both hold
// values of the body below their top level, and nil (CEL's own estimate) for everything else.
func (w worstCase) EstimateCallCost(function, _ string, _ *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	if len(args) != 2 {
		return nil
	}
	switch function {
	case operators.Equals, operators.NotEquals:
		if !w.mayHoldData(args[0].Expr()) || !w.mayHoldData(args[1].Expr()) {
			return nil
		}
	case operators.In:
		// `in` on a map looks the key up; on a list it compares with every element.
		if !w.mayHoldData(args[0].Expr()) || !w.mayListData(args[1].Expr()) {
			return nil
		}
	default:
		return nil
	}
	return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 1, Max: math.MaxUint64}}
}

// mayHoldData reports whether e may give a list or a map of the body, or one holding such: a
// value whose type is dyn, or a list or map literal with such a value in it. Constants and
// values of a type without dyn in it (a string, the event's metadata) cannot.
func (w worstCase) mayHoldData(e celast.Expr) bool {
	switch e.Kind() {
	case celast.LiteralKind:
		return false
	case celast.ListKind:
		return slices.ContainsFunc(e.AsList().Elements(), w.mayHoldData)
	case celast.MapKind:
		for _, entry := range e.AsMap().Entries() {
			if m := entry.AsMapEntry(); w.mayHoldData(m.Key()) || w.mayHoldData(m.Value()) {
				return true
			}
		}
		return false
	}
	return typeMayHoldData(w.ast.GetType(e.ID()))
}

// mayListData reports whether e may give a list holding lists or maps of the body.
func (w worstCase) mayListData(e celast.Expr) bool {
	switch e.Kind() {
	case celast.LiteralKind, celast.MapKind:
		return false
	case celast.ListKind:
		return w.mayHoldData(e)
	}
	t := w.ast.GetType(e.ID())
	return t.Kind() != types.MapKind && typeMayHoldData(t)
}

func typeMayHoldData(t *types.Type) bool {
	switch t.Kind() {
	case types.DynKind, types.AnyKind, types.TypeParamKind, types.ErrorKind:
		return true
	}
	return slices.ContainsFunc(t.Parameters(), typeMayHoldData)
}

// interruptEvery is how many iterations of comprehensions a program that tracks its cost runs
// between two looks at its time limit.
const interruptEvery = 16

// deepCosts charges ==, != and `in` by the values they compare, all the way down. CEL charges
// them by the top-level size of their operands (a tenth of a unit per element for == and !=),
// so two lists each holding one list of 50,000 numbers compare for one unit; compared in a
// comprehension, they would run for seconds inside the cost limit.
type deepCosts struct{ limit uint64 }

var _ interpreter.ActualCostEstimator = deepCosts{}

// CallCost returns the cost of == and != between two lists or two maps and of `in` on a list,
// and nil (CEL's own cost) for everything else.
func (c deepCosts) CallCost(function, _ string, args []ref.Val, _ ref.Val) *uint64 {
	if len(args) != 2 {
		return nil
	}
	n, ok := comparisonCost(function, args[0], args[1], c.limit)
	if !ok {
		return nil
	}
	return &n
}

// comparisonCost returns the cost of function (==, != or `in`) on a and b, counted up to just
// past limit, and false where CEL's own cost is right: for any other function, and for
// comparisons that stop at the top level of their operands.
func comparisonCost(function string, a, b ref.Val, limit uint64) (uint64, bool) {
	switch function {
	case operators.Equals, operators.NotEquals:
		if !sameShape(a, b) {
			return 0, false
		}
		return equalityCost(a, b, limit), true
	case operators.In:
		l, ok := b.(traits.Lister)
		if !ok {
			return 0, false
		}
		// Each element is compared with the value sought: a value that holds others may walk
		// each element, anything else stops at it.
		size, ok := l.Size().(types.Int)
		if !ok {
			return 0, false
		}
		if isContainer(a) {
			return deepSize(l, beyond(limit)), true
		}
		return 1 + uint64(size), true
	}
	return 0, false
}

// boundComparisons replaces each ==, != and `in` of a program with a call that counts what it
// is about to compare before comparing it, and ends the evaluation as the cost limit does when
// that alone is past the limit. CEL charges a call only once it has returned, and looks at the
// time limit only between the iterations of comprehensions, so without it one comparison of two
// lists holding the same large list of the body many times over (as data.k.map(i, data.x)
// builds) would walk all of it, for seconds, before either limit could stop it.
func boundComparisons(limit uint64) interpreter.InterpretableDecorator {
	return func(i interpreter.Interpretable) (interpreter.Interpretable, error) {
		call, ok := i.(interpreter.InterpretableCall)
		if !ok {
			return i, nil
		}
		args := call.Args()
		if len(args) != 2 {
			return i, nil
		}
		switch call.Function() {
		case operators.Equals, operators.NotEquals, operators.In:
			return &boundedCall{InterpretableCall: call, lhs: args[0], rhs: args[1], limit: limit}, nil
		}
		return i, nil
	}
}

// boundedCall is an ==, != or `in` that refuses to start a comparison past the cost limit. It
// keeps the call's ID, function, overload and arguments, so that CEL's cost tracker charges it
// as it would the call it replaces.
type boundedCall struct {
	interpreter.InterpretableCall
	lhs, rhs interpreter.InterpretableV2
	limit    uint64
}

// costExceeded is what CEL's cost tracker panics with when an evaluation exceeds the cost
// limit; the program's Eval recovers it and returns it as the evaluation's error. Panicking, not
// returning an error value, ends the evaluation even where an error would be absorbed, as the
// error of one side of || is when the other side is true.
var costExceeded = interpreter.EvalCancelledError{
	Cause: interpreter.CostLimitExceeded, Message: "operation cancelled: actual cost limit exceeded",
}

// Exec evaluates the operands in the order and with the error and unknown handling of CEL's own
// ==, != and `in`, then compares them as they do unless the comparison is too costly to start.
func (c *boundedCall) Exec(frame *interpreter.ExecutionFrame) ref.Val {
	l := c.lhs.Exec(frame)
	if types.IsError(l) {
		return l
	}
	r := c.rhs.Exec(frame)
	if types.IsError(r) {
		return r
	}
	unk, _ := types.MaybeMergeUnknowns(l, nil)
	unk, _ = types.MaybeMergeUnknowns(r, unk)
	if unk != nil {
		return unk
	}
	fn := c.Function()
	if n, ok := comparisonCost(fn, l, r, c.limit); ok && n > c.limit {
		panic(costExceeded)
	}
	switch fn {
	case operators.Equals:
		return types.Equal(l, r)
	case operators.NotEquals:
		return types.Bool(types.Equal(l, r) != types.True)
	}
	if container, ok := r.(traits.Container); ok && r.Type().HasTrait(traits.ContainerType) {
		return types.LabelErrNode(c.ID(), container.Contains(l))
	}
	return types.LabelErrNode(c.ID(), types.ValOrErr(r, "no such overload"))
}

// Eval implements interpreter.Interpretable.
func (c *boundedCall) Eval(vars interpreter.Activation) ref.Val {
	return c.Exec(interpreter.AsFrame(vars))
}

// hasComprehension reports whether e holds a comprehension, such as the ones exists, all, map
// and filter expand to.
func hasComprehension(e celast.Expr) bool {
	found := false
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.ComprehensionKind {
			found = true
		}
	}))
	return found
}

// sameShape reports whether a and b are lists, or maps, of the same size: the only pairs whose
// comparison goes past their top level.
func sameShape(a, b ref.Val) bool {
	switch a := a.(type) {
	case traits.Lister:
		b, ok := b.(traits.Lister)
		return ok && a.Size() == b.Size()
	case traits.Mapper:
		b, ok := b.(traits.Mapper)
		return ok && a.Size() == b.Size()
	}
	return false
}

func isContainer(v ref.Val) bool {
	switch v.(type) {
	case traits.Lister, traits.Mapper:
		return true
	}
	return false
}

// equalityCost is the smaller deep size of a and b, the most values comparing them can visit.
// Both are counted with a budget that doubles until one of them fits it, so the counting costs
// a few times the smaller size, or the limit, and never the size of a large value compared with
// a small one.
func equalityCost(a, b ref.Val, limit uint64) uint64 {
	for budget := uint64(64); ; budget *= 2 {
		na, nb := deepSize(a, budget), deepSize(b, budget)
		if na < budget || nb < budget || budget > limit {
			return min(na, nb)
		}
	}
}

// beyond returns a count just over limit: counting further changes nothing.
func beyond(limit uint64) uint64 {
	if limit == math.MaxUint64 {
		return limit
	}
	return limit + 1
}

// deepSize counts the values in v, v included, a string as one plus a tenth of its length (as CEL
// charges a string comparison), and map keys as values. It stops counting at max.
func deepSize(v any, max uint64) uint64 {
	c := sizeCounter{max: max}
	c.add(v)
	return min(c.n, max)
}

type sizeCounter struct{ n, max uint64 }

// bodyListType is the type of CEL's lists over the body's arrays.
var bodyListType = reflect.TypeOf(types.DefaultTypeAdapter.NativeToValue([]any{}))

// add counts v and what it holds; it returns false once the count reaches max.
func (c *sizeCounter) add(v any) bool {
	c.n++
	switch v := v.(type) {
	case string:
		c.n += uint64(len(v)) / 10
	case types.String:
		c.n += uint64(len(v)) / 10
	case *jsonObject:
		for k, x := range v.m {
			if !c.add(k) || !c.add(x) {
				return false
			}
		}
	case map[string]any:
		for k, x := range v {
			if !c.add(k) || !c.add(x) {
				return false
			}
		}
	case []any:
		for _, x := range v {
			if !c.add(x) {
				return false
			}
		}
	case traits.Lister:
		// A list of the body hands out the elements it holds, read without adapting each to
		// CEL. Other lists are walked: the Value of a concatenation is a copy of its elements,
		// the objects in it turned into Go maps.
		if reflect.TypeOf(v) == bodyListType {
			if elems, ok := v.Value().([]any); ok {
				c.n--
				return c.add(elems)
			}
		}
		for it := v.Iterator(); it.HasNext() == types.True; {
			if !c.add(it.Next()) {
				return false
			}
		}
	case traits.Mapper:
		for it := v.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			x, _ := v.Find(k)
			if !c.add(k) || !c.add(x) {
				return false
			}
		}
	}
	return c.n < c.max
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
