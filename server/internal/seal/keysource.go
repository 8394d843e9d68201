package seal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// KeySource is where the master keyring comes from: a key file, the environment, or an
// operator's command (Vault, a cloud KMS CLI, an HSM tool) that prints the keys, so no
// vendor SDK is linked in. More sources implement this one method.
type KeySource interface {
	Keyring(ctx context.Context) (*Keyring, error)
}

// FileSource is a key file (one base64 key per line, the first primary), created with a
// fresh key on first use; the keyring follows the file as it is rotated.
type FileSource struct{ Path string }

// Keyring loads the file, creating it first if it does not exist.
func (s FileSource) Keyring(context.Context) (*Keyring, error) {
	if err := EnsureFile(s.Path); err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	r, err := LoadFile(s.Path)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	return r, nil
}

// EnvSource is TWOFOLD_MASTER_KEY and TWOFOLD_MASTER_KEY_PREVIOUS.
type EnvSource struct{ Primary, Previous string }

// Keyring parses the variables.
func (s EnvSource) Keyring(context.Context) (*Keyring, error) {
	r, err := FromEnv(s.Primary, s.Previous)
	if err != nil {
		return nil, fmt.Errorf("TWOFOLD_MASTER_KEY: %w", err)
	}
	return r, nil
}

// CommandSource runs Argv (no shell) and reads the keys from its standard output, in the
// key file's format. Errors name the command and its exit, never what it printed on
// standard output.
type CommandSource struct {
	Argv    []string
	Timeout time.Duration // 30 s
}

// Keyring runs the command, and runs it again when a value sealed under a key it did not
// print turns up: a rotation (the command printing the new key first) reaches a running
// verifier as a rotated key file does, rather than leaving it unable to open what
// rotate-master re-sealed.
func (s CommandSource) Keyring(ctx context.Context) (*Keyring, error) {
	keys, err := s.keys(ctx)
	if err != nil {
		return nil, err
	}
	r := NewKeyring(keys[0], keys[1:]...)
	r.fetch = func() ([]Key, error) { return s.keys(context.Background()) }
	return r, nil
}

// keys runs the command once.
func (s CommandSource) keys(ctx context.Context) ([]Key, error) {
	if len(s.Argv) == 0 {
		return nil, errors.New("--master-key-command is empty")
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, s.Argv[0], s.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	defer clear(stdout.Bytes())
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %s", timeout)
		}
		return nil, fmt.Errorf("--master-key-command %s: %w %s", s.Argv[0], err, msg)
	}
	keys, err := parseKeys(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("--master-key-command %s printed no usable key: %w", s.Argv[0], err)
	}
	return keys, nil
}

// SplitCommand splits a command line into words, honouring single and double quotes and
// backslash escapes outside single quotes, without a shell.
func SplitCommand(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range line {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, errors.New("--master-key-command has an unterminated quote or escape")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
