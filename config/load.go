package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/joho/godotenv"
)

// LoadOptions tunes Load. The zero value behaves like the reference.
type LoadOptions struct {
	// SkipDotEnv leaves <CWD>/.env unread. The reference always reads it.
	SkipDotEnv bool
}

// Load is LoadOptions{}.Load(): the process start-up path.
func Load() (Config, error) { return LoadOptions{}.Load() }

// Load reads the process environment the way the reference does at import time:
//  1. <CWD>/.env is applied to the environment without overriding variables that are
//     already set (so child processes and HTTP_PROXY-style settings see it too);
//  2. the Config is built from the environment (FromEnv);
//  3. the OFFLINE_MODE decision is published for child processes, Python or Go
//     (offline.md §1.1): the latch variable, or the start-up error when
//     OFFLINE_MODE is invalid, plus HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE /
//     YOLO_OFFLINE when offline.
//
// Call it once per process; it changes the process environment.
func (o LoadOptions) Load() (Config, error) {
	if !o.SkipDotEnv {
		if err := applyDotEnv(".env", os.LookupEnv, os.Setenv); err != nil {
			return Config{}, err
		}
	}
	cfg, err := FromEnv(os.LookupEnv)
	if perr := publishOffline(os.LookupEnv, os.Setenv); perr != nil {
		err = errors.Join(err, fmt.Errorf("publish the offline decision: %w", perr))
	}
	if err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// applyDotEnv sets each variable of the file at path that is not set yet. A missing
// file is fine. A file that does not parse stops the start: applying half of it, or
// ignoring a bare "OFFLINE_MODE" line, could run online by mistake (the reference
// fails closed on that line too).
func applyDotEnv(path string, env func(string) (string, bool), setenv func(k, v string) error) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	abs, _ := AbsPath(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", abs, err)
	}
	defer f.Close()
	vars, err := godotenv.Parse(f)
	if err == nil {
		if _, bare := vars[""]; bare {
			err = errors.New(`a line holds a name without "=value"`)
		}
	}
	if err != nil {
		return fmt.Errorf("parse %s: %w (fix the file, or move it away)", abs, err)
	}
	for k, v := range vars {
		if _, set := env(k); set {
			continue
		}
		if err := setenv(k, v); err != nil {
			return fmt.Errorf("apply %s from %s: %w", k, abs, err)
		}
	}
	return nil
}

// publishOffline exports the latch so that every process of the tree agrees.
func publishOffline(env func(string) (string, bool), setenv func(k, v string) error) error {
	offline, _, err := decideOffline(env)
	if err != nil {
		var ie *InvalidEnvError
		if errors.As(err, &ie) && ie.Name == EnvOfflineStartupErr {
			return nil // inherited: already published by the parent, keep its text
		}
		return setenv(EnvOfflineStartupErr, err.Error())
	}
	vars := [][2]string{{EnvOfflineLatch, "False"}}
	if offline {
		vars = [][2]string{
			{EnvOfflineLatch, "True"}, // Python's str(True): both readers accept it
			{envHFHubOffline, "1"},
			{envTransformersOffline, "1"},
			{envYOLOOffline, "True"},
		}
	}
	for _, kv := range vars {
		if err := setenv(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}
