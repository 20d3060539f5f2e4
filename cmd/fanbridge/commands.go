package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/demo"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/service"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", "usage: fanbridge validate -config FILE\n\nChecks a configuration file: syntax, unknown keys, ${ENV} references, values, patterns,\nCEL expressions, verifier keys and TLS files. Exits 0 when it is valid, 1 otherwise.\n\nflags:\n", stderr)
	cfgPath := fs.String("config", "", "configuration file to check (required)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *cfgPath == "" && len(pos) == 1 {
		*cfgPath, pos = pos[0], nil
	}
	if *cfgPath == "" || len(pos) > 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(*cfgPath, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	fmt.Fprintf(stdout, "%s: valid (%s, %s, %s, dlq: %s, mode: %s%s)\n", *cfgPath,
		count(len(cfg.Intake), "intake path", "intake paths"), count(len(cfg.Sinks), "sink", "sinks"),
		count(len(cfg.Routes), "route", "routes"), dlqKind(cfg), cfg.Dispatch.Mode, notificationsSummary(cfg))
	return exitOK
}

// notificationsSummary says, for the summary line, how many WebSocket topics the configuration
// subscribes and in which region (unless that came from the environment), or nothing without a
// notifications section.
func notificationsSummary(cfg *config.Config) string {
	n := cfg.Notifications
	if n == nil {
		return ""
	}
	return fmt.Sprintf(", notifications: %s in %s", count(len(n.Topics), "topic", "topics"),
		settingText(cfg, "notifications.region", n.Region))
}

// dlqKind says what the configuration's dead-letter queue is, and where, unless that came from
// the environment.
func dlqKind(cfg *config.Config) string {
	switch d := cfg.DLQ; {
	case d == nil:
		return "none"
	case d.File != nil:
		return "file " + settingText(cfg, "dlq.file.dir", d.File.Dir)
	default:
		return "kafka topic " + settingText(cfg, "dlq.kafka.topic", d.Kafka.Topic)
	}
}

// fromEnvText stands for a value that came from the environment, as in the configuration's
// errors.
const fromEnvText = "(value from the environment)"

// settingText returns v, the value of the setting at path, to be printed, or fromEnvText when
// ${ENV} expansion put any of it there: it may be a secret, or a path meant to stay unknown, and
// it is no more printed than the configuration's errors quote it. SettingError, which cuts such
// values out of what it reports, tells: it changes a message holding v only then.
func settingText(cfg *config.Config, path, v string) string {
	if cfg.SettingError(path, errors.New(v)).Error() != "config: "+path+": "+v {
		return fromEnvText
	}
	return v
}

const dlqUsage = `usage: fanbridge dlq list   [-config FILE | -file DIR] [-sink NAME]... [-id ID]... [-json]
       fanbridge dlq show   [-config FILE | -file DIR] ID
       fanbridge dlq redrive -config FILE [-file DIR] [-sink NAME] [-id ID]... [-attempts N]
                             [-concurrency N] [-max-failures N]

list     prints one line per dead-letter entry, oldest first, as it reads them (-json: one JSON
         entry per line); text holding control characters is printed quoted
show     prints one entry in full, as JSON
redrive  re-sends entries, each to the one sink it failed on (the sinks come from -config),
         and removes those the sink took; entries of different sinks or events that share an
         ID are kept unsent (conflicts). It prints a line per entry, and stops when one sink
         has failed -max-failures entries in a row with retryable errors, as a sink that is
         down does, leaving the rest in the queue (exit 1); an entry the sink refuses
         (permanently, such as a type with no topic, or as its answer) neither counts nor
         starts the count again
list and redrive take -sink and -id to select entries (repeatable; comma lists)

The queue is the configuration's dlq (file or Kafka), or the filedlq directory given by -file,
which replaces that section (list and show then read nothing of -config; redrive takes the rest
of it). A file queue's directory must hold the queue's LOCK file or a segment named
dlq-<20-digit number>.jsonl, as one a fanbridge has written to does: another directory is
refused (other files, such as an export saved as dlq-export.jsonl, do not count). A running
fanbridge holds a file queue for writing: list and show work beside it, redrive does not.
redrive -id exits 1 for an id that names no entry.

flags:
`

func cmdDLQ(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("dlq", dlqUsage, stderr)
	var (
		cfgPath  = fs.String("config", "", "configuration file: its dlq, and for redrive its sinks")
		dir      = fs.String("file", "", "filedlq directory (overrides the configuration's dlq)")
		asJSON   = fs.Bool("json", false, "list: print entries as JSON lines")
		sinks    listFlag
		ids      listFlag
		attempts = fs.Int("attempts", 3, "redrive: attempts per entry, with backoff")
		conc     = boundedInt{n: 1, min: 1, max: maxRedriveConcurrency}
		maxFails = boundedInt{n: 5, min: 0, max: math.MaxInt}
	)
	fs.Var(&conc, "concurrency", fmt.Sprintf("redrive: re-send `N` entries at once, 1 to %d; with more than 1 they may reach their sinks out of queue order", maxRedriveConcurrency))
	fs.Var(&maxFails, "max-failures", "redrive: stop once a sink has failed `N` entries in a row with retryable errors (it looks down); 0 never stops")
	fs.Var(&sinks, "sink", "list, redrive: only entries of this sink (repeatable)")
	fs.Var(&ids, "id", "list, redrive: only these entry ids (repeatable)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		fs.Usage()
		return exitUsage
	}
	sub, pos := pos[0], pos[1:]
	// The command and its arguments are checked before anything is read, so that a mistake in
	// them is reported as such whatever the configuration file holds.
	switch sub {
	case "list", "redrive":
		if len(pos) > 0 {
			fs.Usage()
			return exitUsage
		}
	case "show":
		if len(pos) != 1 {
			fs.Usage()
			return exitUsage
		}
		if len(sinks) > 0 || len(ids) > 0 {
			fmt.Fprintln(stderr, "fanbridge dlq show: -sink and -id select entries for list and redrive; show takes one entry id")
			return exitUsage
		}
	default:
		fmt.Fprintf(stderr, "fanbridge dlq: unknown command %q\n", sub)
		fs.Usage()
		return exitUsage
	}
	switch {
	case sub == "redrive" && *cfgPath == "":
		fmt.Fprintln(stderr, "fanbridge dlq redrive: -config is required (the sinks to redrive to come from it)")
		return exitUsage
	case *cfgPath == "" && *dir == "":
		fmt.Fprintln(stderr, "fanbridge dlq: give -config FILE or -file DIR")
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// redrive builds the sinks, so it needs the whole file; list and show read the queue only,
	// and need nothing (no secret, say) outside its section. -file replaces the section: its
	// variables need not be set then, and list and show read nothing of the file.
	var cfg *config.Config
	var where *config.DLQ
	var err error
	switch {
	case sub == "redrive" && *dir != "":
		cfg, err = config.LoadWithoutDLQ(*cfgPath, nil)
	case sub == "redrive":
		cfg, err = config.Load(*cfgPath, nil)
	case *dir == "":
		cfg, err = config.LoadDLQ(*cfgPath, nil)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	if cfg != nil {
		where = cfg.DLQ
	}
	if *dir != "" {
		where = &config.DLQ{File: &config.FileDLQ{Dir: *dir}}
	}
	prefix := "fanbridge dlq:"
	if sub == "redrive" {
		prefix = "fanbridge dlq redrive:"
	}
	// Opening a file queue for writing creates what is missing, and reading one takes any
	// directory for an empty queue: a mistyped directory would give a success that read or
	// redrove nothing.
	if where != nil && where.File != nil {
		if err := queueDir(where.File.Dir); err != nil {
			if cfg != nil && where == cfg.DLQ { // the directory may come from the environment: not quoted then
				err = cfg.SettingError("dlq.file.dir", err)
			}
			fmt.Fprintln(stderr, prefix, err)
			return exitFail
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	hide := newQueueHider(cfg, where)
	log = hide.logger(log)
	if sub == "redrive" {
		return dlqRedrive(ctx, cfg, where, redriveOptions{sinkNames: sinks, ids: ids, attempts: *attempts,
			concurrency: conc.n, maxFailures: maxFails.n}, hide, log, stdout, stderr)
	}
	r, closeR, err := service.OpenDLQ(cfg, where, true, log)
	if err != nil {
		fmt.Fprintln(stderr, prefix, err)
		return exitFail
	}
	defer func() { _ = closeR() }()
	if sub == "show" {
		return dlqShow(ctx, r, pos[0], hide, stdout, stderr)
	}
	return dlqList(ctx, r, sinks, ids, *asJSON, hide, stdout, stderr)
}

// selected reports whether e is among the entries -sink and -id select (all when neither is given).
func selected(e dlq.Entry, sinkNames, ids []string) bool {
	return (len(sinkNames) == 0 || slices.Contains(sinkNames, e.Sink)) && (len(ids) == 0 || slices.Contains(ids, e.ID))
}

// dlqList prints the entries of r that -sink and -id select; hide keeps values of the
// configuration out of its errors.
func dlqList(ctx context.Context, r dlq.Reader, sinkNames, ids []string, asJSON bool, hide *queueHider, stdout, stderr io.Writer) int {
	tw := &table{w: stdout}
	if !asJSON {
		tw.add("ID", "LAST ATTEMPT", "SINK", "ROUTE", "CONDITION", "ATTEMPTS", "EVENT ID", "TYPE", "ERROR")
	}
	n := 0
	var line []byte
	err := r.List(ctx, func(e dlq.Entry) error {
		if !selected(e, sinkNames, ids) {
			return nil
		}
		n++
		if asJSON {
			// The entry's JSON is printed as dlq writes it: it holds no terminal control raw,
			// and any rewriting would change the bytes of Raw and Data it carries.
			var err error
			if line, err = e.AppendJSON(line[:0]); err != nil {
				return err
			}
			_, err = stdout.Write(append(line, '\n'))
			return err
		}
		msg := strings.ReplaceAll(strings.ReplaceAll(e.Error, "\r\n", " "), "\n", " ")
		if r := []rune(msg); len(r) > 60 {
			msg = string(r[:60]) + "..."
		}
		return tw.add(cell(e.ID), e.LastAttempt.Format(time.RFC3339), cell(e.Sink), cell(e.Route),
			cell(string(e.Condition)), strconv.Itoa(e.Attempts), cell(e.Event.ID), cell(e.Event.Type), cell(msg))
	})
	if !asJSON {
		// The last rows reach stdout here: a full disk or a closed pipe shows now if not before.
		if ferr := tw.flush(); ferr != nil && err == nil {
			err = ferr
		}
		fmt.Fprintln(stderr, count(n, "entry", "entries"))
	}
	if err != nil {
		fmt.Fprintln(stderr, "fanbridge dlq:", hide.err(err))
		return exitFail
	}
	return exitOK
}

// maxRedriveConcurrency is the most entries dlq redrive re-sends at once: enough to keep a
// remote sink busy, few enough that a redrive does not flood a sink that has just come back.
const maxRedriveConcurrency = 64

// redriveOptions are what the flags of dlq redrive choose.
type redriveOptions struct {
	sinkNames, ids []string
	attempts       int
	concurrency    int
	// maxFailures is how many entries in a row one sink may fail with retryable errors before
	// the redrive stops (see looksDown); 0 never stops.
	maxFailures int
}

// errSinkKeepsFailing stops a redrive when one sink has failed opts.maxFailures entries in a
// row with retryable errors: it is most likely down, and every further entry would cost it the
// whole retry policy.
type errSinkKeepsFailing struct {
	sink string
	n    int
	last error
}

func (e *errSinkKeepsFailing) Error() string {
	return fmt.Sprintf("sink %s failed %d entries in a row with retryable errors", cell(e.sink), e.n)
}

// looksDown reports whether err, why a redriven entry failed, is what a sink that is down
// answers: a retryable error (the Retrier's *retry.Error classifies as its last attempt's) that
// the sink did not give as its answer (sink.Refused). A permanent refusal (a type with no topic,
// an event the consumer refuses) or a refused event is about that entry: the sink is up, and the
// entries behind it may well go through. A cancellation is the redrive's own stop.
func looksDown(err error) bool {
	return retry.Classify(err) == retry.ClassRetryable && !sink.IsRefused(err)
}

func dlqRedrive(ctx context.Context, cfg *config.Config, where *config.DLQ, opts redriveOptions, hide *queueHider, log *slog.Logger, stdout, stderr io.Writer) int {
	sinkNames, ids := opts.sinkNames, opts.ids
	for _, n := range sinkNames {
		if !slices.ContainsFunc(cfg.Sinks, func(s config.Sink) bool { return s.Name == n }) {
			fmt.Fprintf(stderr, "fanbridge dlq redrive: -sink %s: no sink of that name in the configuration\n", n)
			return exitUsage
		}
	}
	sinks, release, err := service.Sinks(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "fanbridge dlq redrive:", err)
		return exitFail
	}
	defer release()
	r, closeR, err := service.OpenDLQ(cfg, where, false, log)
	if err != nil {
		fmt.Fprintln(stderr, "fanbridge dlq redrive:", err)
		return exitFail
	}
	defer func() { _ = closeR() }()
	attempts := max(opts.attempts, 1)
	const attemptTimeout = 10 * time.Second
	rt, err := retry.New(retry.Policy{MaxAttempts: attempts, MaxInterval: 2 * time.Second, AttemptTimeout: attemptTimeout})
	if err != nil {
		fmt.Fprintln(stderr, "fanbridge dlq redrive:", err)
		return exitUsage
	}
	// A sink that is down costs each entry the whole retry policy: the operator is told what
	// one entry may take, and when the redrive gives up.
	stopsAt := "never stops early (-max-failures 0)"
	if opts.maxFailures > 0 {
		stopsAt = fmt.Sprintf("stops once a sink fails %s in a row with retryable errors (-max-failures)", count(opts.maxFailures, "entry", "entries"))
	}
	fmt.Fprintf(stderr, "fanbridge dlq redrive: %s per entry, each up to %s; %s at a time; %s\n",
		count(attempts, "attempt", "attempts"), attemptTimeout, count(opts.concurrency, "entry", "entries"), stopsAt)

	// Redrive calls selectEntry from the one goroutine that lists the queue, and is done with it
	// when it returns.
	found := map[string]bool{}
	selectEntry := func(e dlq.Entry) bool {
		ok := selected(e, sinkNames, ids)
		if ok {
			found[e.ID] = true
		}
		return ok
	}
	// Redrive serialises its results, and is done with them when it returns: inRow and stop need
	// no lock. Cancelling its context stops it: the sends in flight are cut short and their
	// entries stay, as do the entries not yet sent; those delivered are still removed.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	inRow := map[string]int{} // by sink: its retryable failures since it last took an entry
	var stop *errSinkKeepsFailing
	onResult := func(res dlq.Result) {
		// The error text comes from the sink, which may quote a remote server: escaped like the
		// entry's fields, it cannot reach the terminal as control sequences.
		line := fmt.Sprintf("%s  %-10s sink=%s event=%s", cell(res.Entry.ID), res.Outcome, cell(res.Entry.Sink), cell(res.Entry.Event.ID))
		counted := false
		switch res.Outcome {
		case dlq.OutcomeRedriven:
			inRow[res.Entry.Sink] = 0
		case dlq.OutcomeFailed:
			// A refusal of this entry neither counts nor starts the count again: the refusals
			// among entries of a sink that is down must not hide the outage.
			if looksDown(res.Err) {
				counted = true
				inRow[res.Entry.Sink]++
				if opts.maxFailures > 0 {
					line += fmt.Sprintf("  in a row: %d of %d", inRow[res.Entry.Sink], opts.maxFailures)
				}
			}
		}
		if res.Err != nil {
			line += "  error: " + cell(hide.err(res.Err).Error())
		}
		fmt.Fprintln(stdout, line)
		if n := inRow[res.Entry.Sink]; counted && opts.maxFailures > 0 && n >= opts.maxFailures && stop == nil {
			stop = &errSinkKeepsFailing{sink: res.Entry.Sink, n: n, last: res.Err}
			cancel(stop)
		}
	}
	rep, err := dlq.Redrive(ctx, r, sinks, selectEntry, dlq.WithRetrier(rt), dlq.WithConcurrency(opts.concurrency), dlq.WithOnResult(onResult))
	summary := fmt.Sprintf("selected %d, redriven %d, removed %d, failed %d, skipped %d", rep.Selected, rep.Redriven, rep.Removed, rep.Failed, rep.Skipped)
	if rep.Copies > 0 {
		summary += fmt.Sprintf(", copies %d (written twice; they went with the first)", rep.Copies)
	}
	if rep.Conflicts > 0 {
		summary += fmt.Sprintf(", conflicts %d (entries of different sinks or events share an ID; kept unsent)", rep.Conflicts)
	}
	fmt.Fprintln(stdout, summary)
	// The queue's List may report the cancellation as its own error (filedlq's is
	// context.Canceled, not the cause): after a stop, either is the stop.
	if stop != nil && err != nil {
		if !errors.Is(err, stop) && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "fanbridge dlq redrive:", hide.err(err))
		}
		fmt.Fprintf(stderr, "fanbridge dlq redrive: stopped: sink %s failed %s in a row with retryable errors (it looks down), the last with: %s\n"+
			"Every entry not redriven stays in the queue. Run the redrive again once the sink is back\n"+
			"(-sink selects the entries of other sinks; -max-failures 0 never stops early).\n",
			cell(stop.sink), count(stop.n, "entry", "entries"), cell(hide.err(stop.last).Error()))
		return exitFail
	}
	if err != nil {
		fmt.Fprintln(stderr, "fanbridge dlq redrive:", hide.err(err))
		return exitFail
	}
	// An -id that selected nothing is a mistake, as it is for show, not a redrive done.
	missing := false
	for _, id := range ids {
		if found[id] {
			continue
		}
		missing = true
		if len(sinkNames) > 0 {
			fmt.Fprintf(stderr, "fanbridge dlq redrive: no entry %s of %s %s\n", cell(id), plural(len(sinkNames), "sink", "sinks"), cell(strings.Join(sinkNames, ", ")))
		} else {
			fmt.Fprintf(stderr, "fanbridge dlq redrive: no entry %s\n", cell(id))
		}
	}
	if missing || rep.Failed > 0 || rep.Skipped > 0 || rep.Conflicts > 0 {
		return exitFail
	}
	return exitOK
}

// boundedInt is an integer flag that refuses values outside [min, max] when it is parsed, so
// that a mistake is a usage error before anything is read.
type boundedInt struct {
	n, min, max int
}

func (b *boundedInt) String() string {
	if b == nil {
		return ""
	}
	return strconv.Itoa(b.n)
}

func (b *boundedInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	switch {
	case err != nil:
		return errors.New("not a whole number")
	case n < b.min || n > b.max:
		if b.max == math.MaxInt {
			return fmt.Errorf("want %d or more", b.min)
		}
		return fmt.Errorf("want %d to %d", b.min, b.max)
	}
	b.n = n
	return nil
}

// plural returns one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// count returns n followed by one when n is 1, else by many: "1 sink", "2 sinks".
func count(n int, one, many string) string {
	return strconv.Itoa(n) + " " + plural(n, one, many)
}

// queueDir checks that dir is the directory of a file queue before a dlq command opens it. A
// queue opened for writing creates what it misses (the directory, a LOCK file, a first segment),
// and one opened for reading takes any directory for an empty queue: a mistyped directory, or
// the parent of the queue's, would give an empty queue, and the command a success that read or
// redrove nothing. A directory filedlq has opened for writing holds its LOCK file and at least
// one segment (the active one stays when every entry is removed); one holding neither, as
// filedlq names them, is refused (an export such as dlq list -json > dlq-export.jsonl is no
// segment).
func queueDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such directory: a file dlq is made by the fanbridge that writes to it, so there is no queue here (check -file or dlq.file.dir)", dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s: not a directory (a file dlq is a directory)", dir)
	}
	ok, err := filedlq.HoldsQueue(dir)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%s: not a file dlq: it holds neither a LOCK file nor a dlq-<sequence number>.jsonl segment, which the fanbridge that writes to a queue creates (check -file or dlq.file.dir)", dir)
	}
	return nil
}

// tableChunk is how many rows the dlq list table holds before writing them, so that its memory
// stays bounded and its output streams however long the queue is.
const tableChunk = 1000

// table writes rows in aligned columns, tableChunk rows at a time. A column is as wide as its
// widest cell so far: a wider cell in a later chunk moves the columns after it right from that
// chunk on, and they never move back.
type table struct {
	w      io.Writer
	widths []int
	rows   [][]string
	buf    []byte
}

// add adds a row, writing the rows held when there are tableChunk of them.
func (t *table) add(cells ...string) error {
	t.rows = append(t.rows, cells)
	if len(t.rows) < tableChunk {
		return nil
	}
	return t.flush()
}

// flush writes the rows held.
func (t *table) flush() error {
	for _, r := range t.rows {
		for i, c := range r {
			if i == len(t.widths) {
				t.widths = append(t.widths, 0)
			}
			t.widths[i] = max(t.widths[i], utf8.RuneCountInString(c))
		}
	}
	b := t.buf[:0]
	for _, r := range t.rows {
		for i, c := range r {
			b = append(b, c...)
			if i < len(r)-1 {
				for range t.widths[i] - utf8.RuneCountInString(c) + 2 {
					b = append(b, ' ')
				}
			}
		}
		b = append(b, '\n')
	}
	clear(t.rows)
	t.rows, t.buf = t.rows[:0], b
	if len(b) == 0 {
		return nil
	}
	if _, err := t.w.Write(b); err != nil {
		return fmt.Errorf("writing the list: %w", err)
	}
	return nil
}

// cell makes an entry's text safe to print in a table or a line. It comes from senders and sinks
// (an event type, a remote server's error message): a tab would shift the columns, and a carriage
// return or an escape sequence would reach the terminal. Text with any character that is not
// printable (or not UTF-8), or that starts with a quote, is printed Go-quoted, those characters
// escaped; other text as it is.
func cell(s string) string {
	if strings.HasPrefix(s, `"`) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// dlqShow prints the entry with the given ID as indented JSON; hide keeps values of the
// configuration out of its errors.
func dlqShow(ctx context.Context, r dlq.Reader, id string, hide *queueHider, stdout, stderr io.Writer) int {
	e, err := r.Get(ctx, id)
	if err != nil {
		fmt.Fprintln(stderr, "fanbridge dlq:", hide.err(err))
		return exitFail
	}
	b, err := e.AppendJSON(nil)
	if err != nil {
		fmt.Fprintln(stderr, "fanbridge dlq:", err)
		return exitFail
	}
	if _, err := stdout.Write(append(indentEntry(b), '\n')); err != nil {
		fmt.Fprintln(stderr, "fanbridge dlq: writing the entry:", err)
		return exitFail
	}
	return exitOK
}

// indentEntry indents an entry's JSON, compact as dlq writes it, two spaces a level as
// json.Indent does, except for the event's embedded "data" and "raw" values, which are copied as
// they are: indenting them would make the printed entry decode to other Raw and Data bytes than
// the queue holds. Strings are copied as they are, so that the escapes of terminal controls dlq
// writes stay.
func indentEntry(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/4)
	depth := 0
	var keys [3][]byte // the last key read at depths 1 and 2, quotes included
	newline := func() {
		out = append(out, '\n')
		for range depth {
			out = append(out, ' ', ' ')
		}
	}
	for i := 0; i < len(b); {
		switch c := b[i]; c {
		case '"':
			end := jsonStringEnd(b, i)
			if end < len(b) && b[end] == ':' && depth < len(keys) {
				keys[depth] = b[i:end]
			}
			out = append(out, b[i:end]...)
			i = end
			continue
		case '{', '[':
			if i+1 < len(b) && (b[i+1] == '}' || b[i+1] == ']') {
				out = append(out, c, b[i+1])
				i += 2
				continue
			}
			out = append(out, c)
			depth++
			newline()
		case '}', ']':
			depth--
			newline()
			out = append(out, c)
		case ',':
			out = append(out, c)
			newline()
		case ':':
			out = append(out, ':', ' ')
			if depth == 2 && string(keys[1]) == `"event"` && (string(keys[2]) == `"data"` || string(keys[2]) == `"raw"`) {
				end := jsonValueEnd(b, i+1)
				out = append(out, b[i+1:end]...)
				i = end
				continue
			}
		default:
			out = append(out, c)
		}
		i++
	}
	return out
}

// jsonStringEnd returns the index just past the JSON string that starts at b[i], or len(b).
func jsonStringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// jsonValueEnd returns the index just past the compact JSON value that starts at b[i], or len(b).
func jsonValueEnd(b []byte, i int) int {
	depth := 0
	for j := i; j < len(b); {
		switch b[j] {
		case '"':
			j = jsonStringEnd(b, j)
			if depth == 0 {
				return j
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j // the end of the object the value is in
			}
			depth--
			if depth == 0 {
				return j + 1
			}
		case ',':
			if depth == 0 {
				return j
			}
		}
		j++
	}
	return len(b)
}

const patternUsage = `usage: fanbridge pattern test PATTERN EVENT
       fanbridge pattern test -cel EXPRESSION EVENT

Tests an Amazon EventBridge event pattern against an event, or with -cel a CEL expression (over
data, the event body, and event: id, type, topic, source, time, metadata), exactly as a route's
pattern: or cel: key sees it, a CEL expression under the default cel limits (whatever a file
sets). Each argument is the text itself, @FILE to read a file, or @- to read standard input
(for one of the two), 16 MiB at most. EVENT is a body as posted to an intake, in any of the
envelope formats (eventbridge, cloudevents, notification, webhook, webhook-attributes,
open-messaging, standard-webhooks), decoded as an intake that accepts them all decodes it. A
pattern matches an EventBridge event as EventBridge's TestEventPattern does (which also asks for
the envelope fields account, region and resources: this command does not); any other event it
matches in the EventBridge shape fanbridge gives it, with the topic as detail-type and the body
as detail.eventBody. Prints "match" and exits 0, prints "no match" and
exits 1; exits 2 for a bad pattern, expression or event, such as one that repeats a key the
pattern reads (a route matches nothing of it), with the reason on standard error. A CEL
expression that fails on this event (a missing field, say) does not match, as in a route: "no
match", the reason on standard error, exit 1.

  fanbridge pattern test '{"detail-type":[{"suffix":".customer.end"}]}' @event.json
  fanbridge pattern test -cel "data.mediaType == 'CHAT'" @event.json
`

func cmdPattern(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("pattern", patternUsage, stderr)
	cel := fs.Bool("cel", false, "PATTERN is a CEL expression")
	fs.Usage = func() { fmt.Fprint(fs.Output(), patternUsage) } // the usage explains -cel
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 3 || pos[0] != "test" {
		fs.Usage()
		return exitUsage
	}
	if pos[1] == "@-" && pos[2] == "@-" {
		// The first would read all of standard input, and the second would find it empty.
		fmt.Fprintln(stderr, "fanbridge pattern: PATTERN and EVENT cannot both be @-: standard input is read once; give one of them as text or @FILE")
		return exitUsage
	}
	pattern, err := readArg(pos[1])
	if err != nil {
		fmt.Fprintln(stderr, "fanbridge pattern: PATTERN:", err)
		return exitUsage
	}
	event, err := readArg(pos[2])
	if err != nil {
		fmt.Fprintln(stderr, "fanbridge pattern: EVENT:", err)
		return exitUsage
	}
	// Both kinds are compiled before the event is read, so that a bad pattern is reported as
	// such whatever the event; then the event is decoded as an intake decodes it, so that the
	// answer is the route's.
	var x *filter.Expression
	var pat *filter.Pattern
	if *cel {
		x, err = filter.Expr(string(pattern))
	} else {
		pat, err = filter.ParsePattern(pattern)
	}
	if err != nil {
		fmt.Fprintln(stderr, "fanbridge pattern:", err)
		return exitUsage
	}
	e, err := eventbridge.Decode(event, "application/json")
	if err != nil {
		fmt.Fprintln(stderr, "fanbridge pattern: EVENT:", err)
		return exitUsage
	}
	var matched bool
	if x != nil {
		if matched, err = x.Eval(e); err != nil {
			// The event is the user's own, given on the command line: CEL's detail, which may quote
			// it, helps and reveals nothing.
			var ee *filter.EvalError
			if errors.As(err, &ee) && ee.Err != nil {
				err = fmt.Errorf("%w (%v)", err, ee.Err)
			}
			fmt.Fprintln(stderr, "fanbridge pattern: the expression fails on this event, which a route counts as no match:", err)
		}
	} else if matched = pat.Match(e); !matched {
		// Match says no match too for an event the pattern refuses to read (one that repeats a
		// key the pattern reads): that is a bad event, not an answer.
		if err := patternRefusal(pat, e); err != nil {
			fmt.Fprintln(stderr, "fanbridge pattern: EVENT:", err)
			return exitUsage
		}
	}
	if matched {
		fmt.Fprintln(stdout, "match")
		return exitOK
	}
	fmt.Fprintln(stdout, "no match")
	return exitFail
}

// patternRefusal returns why pat refuses to read e, an error wrapping filter.ErrInvalidEvent,
// or nil when it reads e. Match, which stays the answer as in a route, says no match for such an
// event without saying why. patternRefusal gives MatchRaw what Match reads (filter.View):
// Event.Raw for an EventBridge envelope, otherwise an EventBridge-shaped view of the event's
// fields. An event whose Data is not one JSON value has no view, and Match matches nothing of
// it: that is no refusal.
func patternRefusal(pat *filter.Pattern, e *fanbridge.Event) error {
	view := filter.View(e)
	if view == nil {
		return nil
	}
	if _, err := pat.MatchRaw(view); err != nil {
		if f := e.Meta(fanbridge.MetaFormat); f != "" && f != string(eventbridge.FormatEventBridge) {
			return fmt.Errorf("%w (offsets count in the EventBridge shape a pattern sees the event in)", err)
		}
		return err
	}
	return nil
}

// maxArg is the most pattern test reads of a file or standard input: the largest body an intake
// may take (max_body at most), which is more than any pattern or event it can be asked about.
const maxArg = config.MaxMaxBody

// readArg returns a pattern test argument: the text itself, or what @FILE or @- reads. A longer
// read than maxArg is an error, never cut short: the start of an event is no event, and would be
// reported as malformed JSON somewhere in the middle.
func readArg(a string) ([]byte, error) {
	name, ok := strings.CutPrefix(a, "@")
	if !ok {
		return []byte(a), nil
	}
	r := io.Reader(os.Stdin)
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxArg+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxArg {
		return nil, fmt.Errorf("larger than %d MiB", maxArg>>20)
	}
	return b, nil
}

func cmdProvision(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := genesys.RunProvisionCommand(ctx, args, os.Getenv, stdout, stderr)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, genesys.ErrUsage):
		fmt.Fprintln(stderr, "fanbridge provision:", err)
		return exitUsage
	}
	fmt.Fprintln(stderr, "fanbridge provision:", err)
	return exitFail
}

const demoUsage = `usage: fanbridge demo send [-url URL] [-key KEY]
       fanbridge demo sample [NAME]
       fanbridge demo config

send    posts every embedded Genesys sample to a running demo (or any fanbridge API-key path)
sample  prints a sample (by its name or its last dot-separated parts, such as customer.end),
        or lists them without NAME
config  prints the demo's configuration file

flags:
`

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", demoUsage, stderr)
	url := fs.String("url", "http://"+demo.DefaultListen+demo.IntakePath, "send: intake URL")
	// The key's default is read after parsing, never made the flag's default, which -h and every
	// flag error would print.
	key := fs.String("key", "", "send: API key (default $FANBRIDGE_API_KEY)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if *key == "" {
		*key = os.Getenv("FANBRIDGE_API_KEY")
	}
	if len(pos) == 0 {
		fs.Usage()
		return exitUsage
	}
	// Each command takes its arguments and no more (sample's NAME is not empty, which names no
	// sample), so that a mistyped line is not run as another one.
	switch {
	case pos[0] == "sample" && (len(pos) > 2 || len(pos) == 2 && pos[1] == ""),
		(pos[0] == "send" || pos[0] == "config") && len(pos) > 1:
		fs.Usage()
		return exitUsage
	}
	switch pos[0] {
	case "send":
		if *key == "" {
			fmt.Fprintln(stderr, "fanbridge demo send: -key is required (the demo prints it at start)")
			return exitUsage
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := demo.Send(ctx, *url, *key, stdout); err != nil {
			fmt.Fprintln(stderr, "fanbridge demo send:", err)
			return exitFail
		}
		return exitOK
	case "sample":
		if len(pos) == 1 {
			for _, s := range demo.Samples() {
				fmt.Fprintln(stdout, s.Name)
			}
			return exitOK
		}
		s, ok := demo.FindSample(pos[1])
		if !ok {
			fmt.Fprintf(stderr, "fanbridge demo sample: no sample %q\n", pos[1])
			return exitFail
		}
		fmt.Fprintln(stdout, string(s.Body))
		return exitOK
	case "config":
		_, _ = stdout.Write(demo.ConfigYAML())
		return exitOK
	}
	fs.Usage()
	return exitUsage
}
