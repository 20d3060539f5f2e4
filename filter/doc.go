// Package filter decides which events a route wants. It offers three ways to say so, all of
// which implement Predicate:
//
//   - Go predicates: And, Or, Not, All, Any, field tests on the event body (Field), and tests on
//     the event's attributes (Type, Topic, Source, SourcePrefix, Meta).
//   - Amazon EventBridge event patterns, with exactly the meaning they have in AWS: one at a time
//     (ParsePattern, *Pattern) or thousands at once (Matcher), at nearly the same cost.
//   - CEL expressions (Expr), for conditions patterns cannot state.
//
// Test checks a pattern against an event the way EventBridge's TestEventPattern does, without
// asking for the envelope's fields.
//
// # Go predicates
//
// Field("propertyChanges.newValues").Eq("Available") looks the value up in the raw JSON of
// Event.Data without decoding the body or allocating. A path is object keys joined with '.'
// (a backslash makes the next character literal, so `a\.b` is the key "a.b"; the empty path is
// the body itself). Arrays on the way are looked through: the test holds when any element
// satisfies it. Eq and In compare strings with strings, numbers with numbers by value (5 equals
// 5.0), bools with bools and nil with null; Gt, Gte, Lt, Lte and Between compare numbers as
// float64; Prefix, Suffix, Contains, EqualFold and Matches test strings; Exists holds for any
// value, null and objects included (an empty array holds none). A missing field, a value of
// another type, or a body that is not JSON never matches and never panics. The lookup stops at
// the first value that passes, so damage to the JSON after that point goes unnoticed.
//
// Type and Topic accept topic templates: a segment in braces stands for any one segment, so
// Type("v2.users.{id}.presence") matches the EventBridge detail-type "v2.users.{id}.presence"
// and a concrete "v2.users.6a3a….presence" alike.
//
// All() matches everything and Any() nothing. The combinators and Field's comparison methods
// panic when given nil or a value they cannot compare: such mistakes are found when routes are
// built, not when events arrive.
//
// # Event patterns: what is matched
//
// A pattern is matched against the event's Amazon EventBridge envelope: Event.Raw, exactly as
// received, when the event came in one (Metadata["format"] is "eventbridge", or is not set, as
// for events built in code). Any other event (a bare Genesys notification from the WebSocket
// Notification API, a simple webhook shape, a CloudEvent, or an event with an empty Raw) is
// matched against an EventBridge-shaped view of its fields:
//
//	{"id": ID, "detail-type": Type, "source": Source, "account": Metadata["account"],
//	 "time": Time (RFC 3339, UTC), "region": Metadata["region"],
//	 "detail": {"topicName": Topic, "eventBody": Data,
//	            "metadata": {"CorrelationId": Metadata["correlation-id"]}}}
//
// with empty members left out, so the same pattern on "detail-type" and "detail" routes a Genesys
// event the same way whichever intake it came through. Only the fields an intake fills are
// there: a notification from the WebSocket API has no source, account or region, so a pattern
// that names one of them (such as {"source":[{"prefix":"aws.partner/genesys.com"}]}) never
// matches it. An event that is not a JSON object, or whose Data is not exactly one JSON value,
// matches nothing (MatchRaw and Test report the former as an error wrapping ErrInvalidEvent),
// and neither does one that repeats a key, or spells one path two ways, where a rule reads it
// (see Divergences from EventBridge).
//
// # Event patterns: semantics
//
// The package implements the EventBridge pattern language as documented by AWS and as its
// matching engine (event-ruler) behaves where the documentation is silent. Each rule below is
// exercised by testdata/conformance.json.
//
// Structure. A pattern is a JSON object. Its leaves are arrays of values; its objects mirror the
// event's nesting. An event matches when every field the pattern names matches (AND); a field
// matches when any value in its array matches (OR); fields the pattern does not name are
// ignored. A field is identified by its path, the keys from the root joined with "." (so, as in
// EventBridge, {"a.b": …} and {"a": {"b": …}} name the same field, and so do {".x": …} and
// {"": {"x": …}}; a key may start or end with "."). Values and operators apply
// to leaf values only (strings, numbers, true, false, null), never to objects: a pattern that
// names an object field as a leaf does not match it.
//
// Arrays. Arrays in the event leave no trace in paths: a field matches when any element
// matches, and nested arrays are looked through. When a pattern tests several fields inside an
// array of objects, all of them must be satisfied by one element: {"employees": {"first":
// ["Anna"], "last": ["Jones"]}} does not match an Anna Smith beside a Peter Jones. The rule
// applies at every level of nesting. Only objects and arrays are elements in this sense: a value
// that is itself an element of an array lies in none of its elements and goes with any of them,
// as in EventBridge, so {"x": [1], "x.a": [2]} matches {"x": [1, {"a": 2}]}.
//
// Exact values. A string matches the identical string (no case folding or normalisation; ""
// matches only the empty string). true, false and null match themselves; null is not the empty
// string and not a missing field. A number matches a number of the same value: 300 matches
// 300.0 and 3.0e2. Numbers are compared exactly when they lie between -5e11 and 5e11 with at most
// six digits after the point (trailing zeros do not count); other numbers, such as 1649237504949
// epoch milliseconds or 0.0000001, match only the same literal text. A string pattern that is an
// IP address matches the same address written another way ("2001:db8::1" matches
// "2001:0db8:0:0:0:0:0:1"); as in EventBridge, an IPv6 address written with an IPv4 part
// ("::ffff:10.0.0.1") is not taken for an address, here or by cidr, and matches only the same
// text, while an IPv4-mapped address written in hexadecimal ("::ffff:a00:1") is the IPv4 address
// (it matches "10.0.0.1" and cidr "10.0.0.0/8"). Strings never match numbers and numbers never
// match strings.
//
// Operators, each an object with one key inside a field's array:
//
//	{"prefix": "v2.audits."}                    a string starting with the text
//	{"suffix": ".customer.end"}                 a string ending with the text
//	{"equals-ignore-case": "chat"}              a string equal to the text ignoring case
//	{"prefix": {"equals-ignore-case": "v2."}}   a prefix, ignoring case
//	{"suffix": {"equals-ignore-case": ".END"}}  a suffix, ignoring case
//	{"wildcard": "v2.*.customer.end"}           '*' stands for any run of characters; \* is a
//	                                            literal star and \\ a backslash
//	{"numeric": [">", 0, "<=", 5]}              a number in the range; also "=", "<", "<=", ">=";
//	                                            a lower bound may be followed by an upper one
//	{"cidr": "10.0.0.0/24"}                     a string that is an IPv4 or IPv6 address in
//	                                            the block (the mask read as EventBridge reads
//	                                            it: "/024" and "/+24" are /24)
//	{"exists": true}                            the field has a leaf value (null counts; an
//	                                            object or an empty array does not)
//	{"exists": false}                           the field has no leaf value
//	{"anything-but": "initializing"}            any value except the one given; also a number,
//	                                            a list of only strings or only numbers, or
//	                                            {"prefix"|"suffix"|"equals-ignore-case"|
//	                                            "wildcard": a string or a list of strings}
//
// Prefix, suffix, equals-ignore-case, wildcard and cidr match strings only; numeric matches
// numbers only (comparable ones, as defined above). Anything-but matches a leaf value of any type
// that its operand does not exclude: {"anything-but": "x"} matches 5 and null. Like every test
// it needs a value: it does not match a missing field, and it matches an array when some element
// is not excluded. Case-insensitive tests use Unicode simple case folding (as strings.EqualFold).
// {"exists": false} may share a field's array with other values, meaning "absent, or one of
// these".
//
// $or. {"$or": [{…}, {…}]} at any level matches when at least one of its objects (two or more)
// matches together with the rest of the pattern; $or may nest. Operator names may not be used as
// field names inside $or objects. When one alternative names a field that the surrounding
// pattern also names, the occurrence written later applies, as in EventBridge.
//
// Absence inside arrays of objects. EventBridge checks a pattern's fields in the order of their
// paths, and judges {"exists": false} against the array elements chosen for the fields checked
// before it. So {"list": {"kind": ["a"], "note": [{"exists": false}]}} asks for an element of
// kind "a" without a note ("kind" sorts before "note"), while with the field names the other way
// round the absence is judged over all elements. This package does the same.
//
// # Compile errors and limits
//
// ParsePattern rejects what EventBridge rejects: a pattern that is not a JSON object, an empty
// object or array, a leaf that is not an array, arrays inside a field's array, unknown operators
// ("exactly" is not part of the EventBridge language), an operator object with more than one key,
// an operand of the wrong type, a wildcard with "**" or an escape other than \* and \\,
// anything-but with a mixed or empty list (its own, or that of its prefix, suffix,
// equals-ignore-case or wildcard), null or a boolean, an empty prefix or suffix, or another
// operator in its object (EventBridge has no anything-but of numeric, exists or cidr), a numeric
// range with more than two comparisons or whose bounds are out of range, have more than six
// decimals, or do not have the lower bound below the upper one, a malformed CIDR block or one
// EventBridge refuses (a block of one address, /32 for IPv4 or /128 for IPv6, for which an exact
// string does the job, an IPv6 block written with an IPv4 part, or an IPv4-mapped block with 32
// or more mask bits, which EventBridge counts as an IPv4 mask), and a $or that is not an array of
// at least two objects. Beyond EventBridge, it rejects an object that gives a key twice, at any
// depth (keys compare as JSON reads them, so "sourc\u0065" repeats "source"; see Divergences
// from EventBridge). It also bounds what a pattern may cost (ErrPatternTooComplex):
// MaxPatternBytes (64 KiB), MaxPatternDepth (32 levels), MaxPatternValues (1,000 values and
// operators), MaxOrCombinations (1,000 alternatives once every $or is multiplied out),
// MaxExpandedFields (10,000 fields over all those alternatives, a field outside a $or counting once
// in each), MaxWildcardStars (16 per wildcard) and MaxWildcardValues (100 wildcards). These bounds
// are the package's own, and looser than AWS's service quotas: EventBridge refuses a pattern over
// 2,048 characters by default (4,096 after a quota increase) and a wildcard it finds too complex
// ("Rule is too complex"). A pattern that compiles here may therefore be refused by EventBridge;
// keep patterns meant for both under 2,048 characters.
//
// # Divergences from EventBridge
//
// Ambiguous events. EventBridge reads every copy of a repeated key, and both spellings of a
// path, {"a.b": …} beside {"a": {"b": …}}. This package refuses such an event when the path is
// one some rule reads, or leads to one: MatchRaw and Test return an error wrapping
// ErrInvalidEvent, and Match matches nothing. A Matcher reads the paths of all its rules, so it
// refuses the event for all of them, including rules that read none of those paths. Precisely,
// an event is refused when it reaches such a path twice through object keys and the two places
// do not lie in different elements of one array: a key repeated in one object (escaped or not),
// a dotted key beside the nested spelling of its path, one spelling outside an array and the
// other inside it, as in {"a": [{"b": 1}], "a.b": 2}, or the spellings in elements of two
// different arrays, as in {"x": [{"d.a": 1}], "x.d": [{"a": 2}]}. Each element of one array may
// spell a path its own way, and keys no rule reads may repeat freely. The reason is cost: copies of an array
// at one path escape the array rule, which keeps the fields tested together in one element, so a
// search would have to combine every element of one copy with every element of another, for
// work growing with a power of the event. JSON leaves the meaning of a repeated key open (RFC
// 8259 asks that names be unique).
//
// Repeated keys in patterns. A pattern object that gives a key twice, such as
// {"source": ["a"], "source": ["b"]} or {"detail": {"x": ["a"]}, "detail": {"y": ["b"]}}, is
// refused, and the error names the path (never a value). EventBridge's engine, event-ruler, by
// default keeps the value written last, dropping the first condition, and merges two objects
// under one key; it refuses the first kind when told not to let a later field replace an
// earlier one. A route that loses a condition without a word matches what it should not; and
// the fanbridge command's YAML form of a pattern refuses a key given twice, so a pattern reads
// the same written either way. A field named once in the pattern and once in a $or alternative, or
// written both as {"a.b": …} and {"a": {"b": …}}, is not a repeated key: the occurrence written
// later applies, as in EventBridge.
//
// Otherwise none in the language above, with these notes. Numbers inside the comparable range
// match by value (300 matches 300.0 and 3.0e2), as the engine does; the EventBridge user guide
// says instead that numbers match by their text, so that those three differ. The range of
// comparable numbers is the one of the current EventBridge engine (±5e11, six decimals); older
// AWS documentation quotes a smaller range, and a number outside it is treated as literal text
// either way. Case folding
// (equals-ignore-case, alone or in prefix, suffix and anything-but) is Unicode simple folding,
// as strings.EqualFold: characters whose upper case is longer (German ß against "SS") are not
// equal ignoring case, while some that EventBridge's engine keeps apart are: the Kelvin sign
// K (U+212A) equals "k", "ſ" equals "s" and the final "ς" equals "σ". A CIDR block written with
// host bits set stands for its whole network here ("10.0.0.33/24" is 10.0.0.0 to 10.0.0.255),
// where the engine starts the range at the address written. Key order for the absence rule
// compares paths byte by byte (UTF-8), which differs from the engine's UTF-16 order only between
// characters above U+FFFF and those from U+E000 to U+FFFF. A lone UTF-16 surrogate escape
// ("\ud800"), in a pattern or an event, reads as U+FFFD, as encoding/json reads it, so it
// equals a real U+FFFD, which the engine keeps apart.
//
// Field's Eq and In, which are not part of the pattern language, compare numbers as float64, so
// integers beyond 2^53 that round to the same float64 are equal (9007199254740993 equals
// 9007199254740992); patterns compare such numbers by their text.
//
// # The Matcher
//
// A Matcher holds named patterns and returns the names that match an event. It compiles all of
// them into one automaton: each pattern (with its $or alternatives) becomes a sequence of
// steps, a path and a condition each, and the sequences are merged into a trie in which each
// node indexes its outgoing conditions by value: exact values in maps, prefixes and suffixes by
// a rolling hash per distinct length, numeric ranges in an interval tree; anything-but, cidr and
// wildcards with no literal start or end are checked one by one at their node. Matching reads
// the event once, keeping only the fields some pattern names (others are stepped over without
// being decoded), then walks the trie from the root along the transitions the event's values
// take. The cost depends on the event and on how many rules partly match it, not on how many
// rules there are: on a 2.7 KB Genesys event, 10,000 generated routing rules cost about 1.5
// times what one does (BenchmarkSideBySide). Rules that partly match go on from nodes of their
// own, and a node looks at the values of the path it tests next; when many such nodes test one
// path for exact strings only, each looks its strings up among the values there, indexed once
// per event, so 100 routes by queue and status on an event listing the 100 queues and 20,000
// statuses cost about twice what one route does. A node testing anything else there (a prefix,
// a range, anything-but, exists, a number) still looks at each value, so such rules cost in
// proportion to their number times the values at the path. Steps are tested most selective first (exact
// values before ranges), except that the fields under one key are tested one after the other, so
// that a walk holds positions only in the arrays enclosing the field it tests next. In a rule
// using {"exists": false}, whose meaning depends on the fields before that test in path order,
// the test keeps its place among the fields under its own top-level key (the arrays it is judged
// over lie under that key) and only the fields between two such tests are grouped by key; the
// top-level keys are still ordered freely. A Pattern tests its steps in the same order, and a
// Pattern with $or matches through the same automaton, built for it alone on its first match,
// so that its alternatives share the steps they begin with as a Matcher's rules do. Walks
// that reach the same step holding the same positions in the arrays that can still affect the
// remaining steps are merged, rules that share a step go on from it with only the positions each
// needs, and a step taken inside an element of an array looks only at the values in that
// element, so, for every event the package accepts, the work grows in proportion to the event,
// not with the number of ways to combine its array elements. (The package refuses an event that
// repeats a key, or spells one path two ways, where a rule reads it, because copies of an array
// at one path would escape that bound; see Divergences from EventBridge.) Two things add to it.
// An absence test on a key that sorts between two fields of another key (a.b, then a.b-x absent,
// then a.b.c) keeps them apart, and there arrays under a.b can make the work grow with the
// product of two array lengths. Nesting adds one factor: a value holds a position in each array
// around it that has two or more elements and holds objects, and the work on the value grows
// with the number of those. Arrays of one element add nothing, so objects wrapped in 60 of them
// cost what they cost in one. Arrays of two elements do add: when the objects of a 250 KB event
// lie 60 arrays deep, each array holding the next one and an object, the work (as the package's
// tests count it: nodes or steps visited plus values looked at) is about 50 times what it is with
// the objects in one array, and 120 arrays deep about 100 times; it grows linearly with the
// depth, to about 425 times just under the 512 levels an event may nest. The time grew less on
// the two-core machine that measured it: about 8 ms in one array, 100 ms 60 arrays deep and
// 200 ms 120 deep (one rule, {"a": {"b": [1], "c": [2]}}, and objects that all fail it).
// Memory does not grow so: a value's positions are read through the elements around it rather
// than copied for each value, and a walk holds one element per value it has chosen, so the
// memory a match takes follows the event's size however deep its arrays nest.
//
// Match appends names in ascending order to the caller's slice; reusing it (dst[:0]) makes
// matching allocation-free after warm-up, for events carrying Raw. Add replaces a rule of the
// same name; Add, AddPattern and Remove are cheap, and the first match after a change builds
// the new automaton (so a burst of changes costs one build).
//
// # CEL expressions
//
// Expr compiles a CEL expression with two variables: data, the event body (objects as maps,
// arrays as lists, integers as int, other numbers as double; int and double compare with each
// other), and event, with the fields id, type, topic, source (strings), time (timestamp; for an
// event without a time, 1970-01-01T00:00:00Z) and metadata (map of strings). The result type must
// be bool (or dyn, checked when evaluated). The body is decoded only if the expression uses data,
// once per evaluation; MatchExprs evaluates many expressions on one event with a single decode.
//
// The body as data. A comprehension over an object (data.attributes.exists(k, …)) walks its keys
// in sorted order, byte by byte. A repeated key takes its last value ({"a": 1, "a": 2} gives
// data.a == 2), where event patterns refuse an event that repeats a key a rule reads. Numbers
// compare by their value as int or double, whatever their size or decimals, where patterns
// compare them only between -5e11 and 5e11 with at most six decimals (see Event patterns:
// semantics): data.ms > 120000 holds for 1649237504949, and data.x > 0 for 0.0000001, which
// {"numeric": [">", 120000]} and {"numeric": [">", 0]} do not match. An expression and a pattern
// written for one selection thus part on such numbers and on repeated keys. A body nested deeper
// than 512 levels, or holding a number beyond the range of a double (±1.8e308, such as 1e400,
// which would read as an infinity), is refused, each with a reason of its own; an integer too
// large for an int reads as a double, and a number too small for a double as 0.
//
// Limits. Compilation bounds the source size (WithMaxExprSize, default 4,096 code points) and
// evaluation the work (WithCostLimit, default 100,000 cost units). The cost limit is the bound to
// rely on: an evaluation's cost depends only on the expression and the event, so one the limit
// stops is stopped at the same point on every machine and every run. == and != between two lists
// or two maps, and `in` on a list, cost one unit per value they may walk, at every level of
// nesting, a string one unit more per ten bytes (CEL's own charge counts only the top level). Cost
// is tracked only for expressions whose worst case could exceed the limit, such as comprehensions
// over the body or == between two values of it (or between list and map literals holding them,
// as in [data.a] == [data.b]), because tracking slows evaluation down: CEL's tracker slows a
// comprehension down as it goes, with the square of its steps (one over 1,000 numbers took about
// 2 ms on the two-core machine that measured it, one over 10,000 about 110 ms, against 5 ms
// untracked). So the cost limit lets an evaluation run for seconds: on a body of 260 KiB
// (eventbridge's default limit), exists_one or filter comparing each of 130,000 numbers (or map
// with a filter) ran 3 to 6 s before it stopped them, exists or all under 1.5 s. Tracked
// evaluations also run under a time limit (WithTimeLimit, default 10 s), checked every few
// iterations of a comprehension. It sits above the cost limit's worst case, and must (raise it
// with the cost limit), because where it falls depends on the machine and its load, so an
// evaluation that comes near it may give an answer on one run and stop on another. It is only a
// safety net against evaluations that run long on any machine: steps that CEL charges nothing
// for are never stopped by the cost limit, and the tracker makes their time grow with the square
// of their number (data.ids.exists_one(i, false) over 120,000 numbers ran for 26 s). An
// expression whose worst case fits the cost limit is neither tracked nor timed, and a tracked one
// without a comprehension is not timed (the time limit is looked at nowhere else). CEL charges a
// call only once it has returned, so a tracked ==, != or `in` first counts what its operands
// hold and is refused, for its cost, when that alone is past the limit: two lists each holding
// the same list of the body 2,000 times (data.k.map(i, data.x)) are not walked for seconds.
//
// Limits and the caller's deadline. An evaluation takes no context: nothing but its own limits
// stops it, and at the defaults one evaluation may take seconds on a large body (above). A
// Predicate that is an Expression, as the filter of a fanout route, runs before any sink is
// called and outside the dispatch's deadline, one route after another, so two such routes on one
// 260 KiB event can take longer than a webhook's caller waits (EventBridge gives up after 5 s).
// For routes on large bodies, lower WithCostLimit (with it, the time an evaluation may take),
// keep comprehensions over large arrays out of routes, or state the condition as an event
// pattern, whose cost grows with the event's size, not with the square of an array's.
//
// Errors of evaluation. An evaluation error (a missing field, a wrong type, the cost or the time
// limit, a body that is missing, not JSON or refused) means no match. So Not of an expression
// matches the events on which the expression fails: Not(MustExpr(`data.x == 1`)) matches an
// event without x; to leave those out, negate inside the expression (`data.x != 1` fails without
// x). Eval returns the error as an *EvalError, whose message names the expression and a fixed
// reason but no value from the body (the CEL error it wraps may quote some), and WithExprLogger
// logs the same at debug level.
//
// # Errors
//
// ParsePattern returns a *PatternError naming the path, the operator and the reason, such as
//
//	filter: pattern at "detail.eventBody.mediaType": "prefix" wants a string
//
// wrapping ErrInvalidPattern, or ErrPatternTooComplex for patterns beyond the limits. Expr
// returns errors wrapping ErrInvalidExpression, and Expression.Eval an *EvalError. MatchRaw and
// Test return errors wrapping ErrInvalidEvent for events that are not a JSON object, and for
// events that repeat a key, or spell one path two ways, where a rule reads it, such as
//
//	filter: invalid event: ambiguous event: the key at offset 41 repeats a key, or spells a path two ways, at "detail.eventBody", which a rule reads
//
// (the message gives the key's offset and the rule's path, never a value from the event); Match
// treats such events as matching nothing, and Matcher.MatchRaw returns dst unchanged.
// Matcher.Add and AddPattern return ErrInvalidName for an empty name or a nil pattern, Add the
// pattern's compile error, and AddPattern an error wrapping ErrInvalidPattern for a zero Pattern
// (one ParsePattern did not make); a failed change leaves the Matcher as it was.
//
// # Concurrency
//
// Every Predicate in this package, including *Pattern and *Expression, is immutable and safe
// for concurrent use. A Matcher matches without locks against an immutable snapshot; Add,
// AddPattern and Remove may run at the same time and are serialised among themselves; once one
// of them returns, every later match sees its effect.
package filter
