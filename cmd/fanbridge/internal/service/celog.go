package service

import (
	"context"
	"log/slog"
)

// routeLog is the logger of one CEL route's evaluation errors: the filter package's records, with
// the route's name in place of the expression. A route's CEL text may hold a value ${ENV}
// expansion put there (a tenant key compared with a field), which the configuration never shows,
// and the name says as well which expression it is.
func routeLog(log *slog.Logger, route string) *slog.Logger {
	return slog.New(dropExpr{log.Handler().WithAttrs([]slog.Attr{slog.String("route", route)})})
}

// dropExpr passes records on without their expr attribute.
type dropExpr struct{ slog.Handler }

func (h dropExpr) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "expr" {
			out.AddAttrs(a)
		}
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h dropExpr) WithAttrs(as []slog.Attr) slog.Handler { return dropExpr{h.Handler.WithAttrs(as)} }

func (h dropExpr) WithGroup(name string) slog.Handler { return dropExpr{h.Handler.WithGroup(name)} }
