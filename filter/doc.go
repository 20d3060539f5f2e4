// Package filter decides which events a route wants: Go predicates, Amazon EventBridge event
// patterns (one at a time, or thousands at once in a Matcher), and CEL expressions.
package filter
