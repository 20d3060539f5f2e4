package grpcsink

// PrintableASCII lets the tests hold the word-at-a-time check against its definition.
var PrintableASCII = printableASCII
