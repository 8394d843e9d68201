package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/twofold-dev/twofold/server/internal/serve"
)

// settings are serve's options that a --config file and TWOFOLD_* variables may set too,
// each named like its flag: the file key "tls-cert" is the variable TWOFOLD_TLS_CERT.
// The master key itself is never among them: it comes from TWOFOLD_MASTER_KEY, the key
// file or --master-key-command, not from a file of settings.
var settings = []string{
	"addr", "data", "store", "redis", "redis-prefix", "issuer", "behind-proxy", "ip-budget",
	"tls-cert", "tls-key", "trusted-proxies", "client-ip-header", "ntp", "master-key-command",
}

// envName is the variable that sets a setting: TWOFOLD_ and the flag in capitals.
func envName(setting string) string {
	return "TWOFOLD_" + strings.ToUpper(strings.ReplaceAll(setting, "-", "_"))
}

// layer fills each setting the command line left out from the environment, else from the
// JSON file, so flags > environment > file > the flag defaults fs already holds. It
// returns every problem, each naming the file key or the variable. Settings the command
// has no flag for are skipped: `users reset --config F` takes F's data and store.
func layer(fs *flag.FlagSet, file string, getenv func(string) string) []error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fromFile := map[string]string{}
	if file != "" {
		var problems []error
		fromFile, problems = readConfigFile(file)
		errs = append(errs, problems...)
	}
	for _, name := range settings {
		if given[name] || fs.Lookup(name) == nil {
			continue
		}
		if v := getenv(envName(name)); v != "" {
			if err := fs.Set(name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", envName(name), v, err))
			}
			continue
		}
		if v, ok := fromFile[name]; ok {
			if err := fs.Set(name, v); err != nil {
				errs = append(errs, fmt.Errorf("--config %s: %q: %q: %v", file, name, v, err))
			}
		}
	}
	return errs
}

// readConfigFile reads a JSON object of settings: strings, booleans, numbers, and for
// trusted-proxies a list of CIDRs. Unknown keys are errors naming them (a typo would
// otherwise silently leave a default in force).
func readConfigFile(file string) (map[string]string, []error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, []error{fmt.Errorf("--config: %w", err)}
	}
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, []error{fmt.Errorf("--config %s: not a JSON object: %v", file, err)}
	}
	out := map[string]string{}
	var problems []error
	var unknown []string
	for k, v := range doc {
		if !slices.Contains(settings, k) {
			unknown = append(unknown, strconv.Quote(k))
			continue
		}
		s, ok := settingValue(v)
		if !ok {
			problems = append(problems, fmt.Errorf("--config %s: %q must be a string, number or boolean (trusted-proxies: a list of CIDRs)", file, k))
			continue
		}
		out[k] = s
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		problems = append([]error{fmt.Errorf("--config %s: unknown keys %s (known: %s)", file, strings.Join(unknown, ", "), strings.Join(settings, ", "))}, problems...)
	}
	return out, problems
}

func settingValue(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case json.Number:
		return v.String(), true
	case []any:
		parts := make([]string, len(v))
		for i, p := range v {
			s, ok := p.(string)
			if !ok {
				return "", false
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), true
	}
	return "", false
}

// checkFailed is `config check`'s answer when something is wrong: main prints one line
// per problem and exits 2.
type checkFailed []error

func (c checkFailed) Error() string { return errors.Join(c...).Error() }

// configCheck reports every problem of the layered settings at once, or prints the
// effective settings as JSON with the secrets in them redacted.
func configCheck(cfg *serve.Config, fs *flag.FlagSet, layerErrs []error, stdout io.Writer) error {
	problems := append(layerErrs, leaves(cfg.Validate(true))...)
	if len(problems) > 0 {
		return checkFailed(problems)
	}
	out := map[string]any{}
	for _, name := range settings {
		if g, ok := fs.Lookup(name).Value.(flag.Getter); ok {
			out[name] = g.Get()
		}
	}
	out["trusted-proxies"] = append([]string{}, cfg.TrustedProxies...)
	out["store"], out["redis"] = redactURL(cfg.Store), redactURL(cfg.Redis)
	switch {
	case cfg.MasterKeyCommand != "":
		out["master-key"] = "from --master-key-command"
	case cfg.MasterKey != "":
		out["master-key"] = "from TWOFOLD_MASTER_KEY (redacted)"
	default:
		out["master-key"] = "from the key file in --data"
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// leaves lists the problems a joined error holds, however deeply joined, one per line.
func leaves(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if err == nil {
			return nil
		}
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, leaves(e)...)
	}
	return out
}

// redactURL hides a password in a postgres:// or redis:// URL: its userinfo's, and any
// query parameter that names one (pgx reads password and sslpassword there too).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if s != "" {
			return "(redacted: not a URL)"
		}
		return s
	}
	params := strings.Split(u.RawQuery, "&")
	for i, p := range params {
		raw, _, _ := strings.Cut(p, "=")
		if k, err := url.QueryUnescape(raw); err != nil || strings.Contains(strings.ToLower(k), "password") {
			params[i] = raw + "=xxxxx"
		}
	}
	u.RawQuery = strings.Join(params, "&")
	return u.Redacted()
}
