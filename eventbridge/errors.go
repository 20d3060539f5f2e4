package eventbridge

import "errors"

// Decoding errors. Every error Decode, DecodeNotification and Decoder.Decode return wraps exactly
// one of them; the text after the sentinel names what is wrong (a field name, an offset), never
// bytes of the body. A Handler answers all of them with 400, except ErrUnsupportedMediaType (415).
var (
	// ErrMalformed reports a body that is not one valid JSON document: a syntax error, trailing
	// data, an empty body, invalid UTF-8, or nesting deeper than MaxDepth.
	ErrMalformed = errors.New("eventbridge: malformed JSON")
	// ErrUnknownFormat reports valid JSON that is no envelope the decoder accepts (or one of a
	// format the decoder was restricted away from).
	ErrUnknownFormat = errors.New("eventbridge: unknown event format")
	// ErrInvalidField reports a known envelope with a required field missing, a field of the wrong
	// JSON type, or a value out of bounds (too long, control characters, a bad timestamp).
	ErrInvalidField = errors.New("eventbridge: invalid field")
	// ErrUnsupportedMediaType reports a Content-Type that is neither JSON nor structured
	// CloudEvents JSON.
	ErrUnsupportedMediaType = errors.New("eventbridge: unsupported media type")
)

// ErrInvalidConfig reports a bad argument to NewHandler or NewDecoder.
var ErrInvalidConfig = errors.New("eventbridge: invalid configuration")
