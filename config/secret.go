package config

import (
	"fmt"
	"io"
	"log/slog"
)

const redacted = "<redacted>"

// Secret holds a credential. Every way of printing or encoding it (fmt verbs, JSON,
// text encoders, slog) yields "<redacted>", so a Config can be logged or dumped
// whole without leaking the key (lessons K6). Reveal is the only way to the value.
type Secret string

// Reveal returns the secret itself, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

func (Secret) String() string   { return redacted }
func (Secret) GoString() string { return redacted }

// Format covers every verb (%v %+v %#v %s %q %x ...), which String alone does not.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
