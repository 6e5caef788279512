package config

import "fmt"

// InvalidEnvError is a variable whose value the parsing rules reject (the reference's
// InvalidEnvVariable). The process must not start with it: a guessed default could
// silently point at another cache or disable retries.
type InvalidEnvError struct {
	Name     string // the variable, e.g. "API_CALLS_TIMEOUT"
	Value    string // the rejected value; "<redacted>" for secret variables
	Accepted string // what the variable accepts, in words
}

func (e *InvalidEnvError) Error() string {
	return fmt.Sprintf("invalid environment variable %s=%q: accepted: %s", e.Name, e.Value, e.Accepted)
}

// invalid builds the error, hiding the value of secret variables so that the error
// (and any log line or struct dump holding it) never carries the secret.
func invalid(name, value, accepted string) *InvalidEnvError {
	if name == EnvAPIKey || name == EnvBlobCacheSecretAccessKey {
		value = redacted
	}
	return &InvalidEnvError{Name: name, Value: value, Accepted: accepted}
}
