package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// env is what a subcommand may touch of the outside world: it never reads
// os.Getenv or writes os.Stdout directly, so that tests drive it through run.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer

	// flagOf maps each setting's environment variable to its flag, as the
	// command registered them, so that an error can name the setting the
	// way the person gave it (settingError).
	flagOf map[string]string
}

// noteFlag records that the setting of environment variable envName is
// flag name.
func (e *env) noteFlag(envName, name string) {
	if e.flagOf == nil {
		e.flagOf = map[string]string{}
	}
	e.flagOf[envName] = name
}

type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands is the table of subcommands; each lives in a file of its own name.
var commands = map[string]command{}

func register(name, summary string, fn func(ctx context.Context, e *env, args []string) error) {
	commands[name] = command{summary: summary, run: fn}
}

// usageError is a bad command line or setting: one line, exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// settingError is a missing or malformed setting (a flag with an
// environment-variable fallback): exit status 2, one line that names the
// setting as the person gave it — the flag if they typed it, the variable if
// they set it, both if they gave neither (env.check fills name in).
type settingError struct {
	Env string // the setting's environment variable
	Msg string
	// envOnly: the error is about the environment variable's value, which
	// does not matter when the flag is given (the flag wins).
	envOnly bool
	name    string
}

func (e *settingError) Error() string {
	if e.name == "" {
		return e.Env + ": " + e.Msg
	}
	return e.name + ": " + e.Msg
}

// settingf reports a bad value of the setting whose variable is envName.
func settingf(envName, format string, args ...any) error {
	return &settingError{Env: envName, Msg: fmt.Sprintf(format, args...)}
}

// exitStatus is a result that is not a failure but has an exit status of
// its own (drift found by `plan --detailed-exitcode`, failed rows in
// `status`); msg, if any, is printed like an error.
type exitStatus struct {
	code int
	msg  string
}

func (e *exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Exit statuses (the README's "Exit statuses" lists them).
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2 // a bad command line or setting
	exitChanges   = 2 // plan --detailed-exitcode: there is drift to fix (errors are then 1)
	exitAttention = 3 // status: rows are failed or conflict
)

// run is the whole program minus the process: main calls it with the real
// arguments, environment and streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr, flagOf: map[string]string{}}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return usagef("no command given")
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		return usagef("unknown command %q%s; `syncd help` lists the commands", args[0], didYouMean(args[0], names, ""))
	}
	return cmd.run(ctx, e, args[1:])
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "syncd keeps Auth0 in step with the employees table of a PostgreSQL database.")
	fmt.Fprintln(w, "\nUsage: syncd <command> [flags]   (syncd <command> -h for its flags)\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
}

// exitCode maps run's error to the process exit status and prints it: one
// line per problem, each starting "syncd: ".
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var st *exitStatus
	if errors.As(err, &st) {
		if st.msg != "" {
			fmt.Fprintf(stderr, "syncd: %s\n", st.msg)
		}
		return st.code
	}
	code := exitError
	if isUsage(err) {
		code = exitUsage
	}
	for _, leaf := range leaves(err) {
		fmt.Fprintf(stderr, "syncd: %s\n", leaf)
	}
	return code
}

// isUsage says whether every problem in err is a usage or setting error.
func isUsage(err error) bool {
	for _, leaf := range leaves(err) {
		var ue *usageError
		var se *settingError
		if !errors.As(leaf, &ue) && !errors.As(leaf, &se) {
			return false
		}
	}
	return true
}

// leaves flattens errors.Join trees: one error per problem.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

// check joins the problems of a command's settings (all of them, so that
// one run names everything that is missing) and names each setting as the
// person gave it on fs's command line or in the environment.
func (e *env) check(fs *flag.FlagSet, errs ...error) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var out []error
	for _, err := range errs {
		if err == nil {
			continue
		}
		for _, leaf := range leaves(err) {
			var se *settingError
			if errors.As(leaf, &se) {
				name := e.flagOf[se.Env]
				switch {
				case name == "":
				case given[name] && se.envOnly:
					continue // the flag wins over a malformed variable
				case given[name]:
					se.name = "--" + name
				case e.getenv(se.Env) != "":
					se.name = se.Env
				default:
					se.name = se.Env + " (--" + name + ")"
				}
			}
			out = append(out, leaf)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return errors.Join(out...)
}

// newFlagSet returns a flag set whose mistakes come back from parseFlags
// as one usage line (the flag package would print the error and every
// flag), and whose -h prints the flags on stderr.
func newFlagSet(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("syncd "+name, flag.ContinueOnError)
	// The flag package writes a parse error to Output and then calls Usage;
	// -h calls Usage alone. A write to Output therefore means a mistake,
	// which parseFlags reports itself.
	failed := false
	fs.SetOutput(writerFunc(func(p []byte) (int, error) { failed = true; return len(p), nil }))
	fs.Usage = func() {
		if failed {
			return
		}
		fmt.Fprintf(e.stderr, "Usage of %s:\n", fs.Name())
		out := fs.Output()
		fs.SetOutput(e.stderr)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
	return fs
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s; `%s -h` lists the flags", flagMistake(fs, err), fs.Name())
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q; `%s -h` lists the flags", fs.Name(), fs.Arg(0), fs.Name())
	}
	return nil
}

// flagMistake rewords the flag package's parse error with the double-dash
// spelling the README uses, and suggests the closest flag for an unknown
// one. The flag package's messages are stable (Go 1 compatibility).
func flagMistake(fs *flag.FlagSet, err error) string {
	msg := strings.TrimSpace(err.Error())
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		return "unknown flag --" + name + didYouMean(name, names, "--")
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return "--" + name + " needs a value"
	}
	// invalid value "x" for flag -workers: parse error
	if i := strings.Index(msg, " for flag -"); i >= 0 {
		return msg[:i] + " for --" + msg[i+len(" for flag -"):]
	}
	if i := strings.Index(msg, " for -"); i >= 0 {
		return msg[:i] + " for --" + msg[i+len(" for -"):]
	}
	return msg
}

// didYouMean returns ` (did you mean --workers?)` when one of names is
// close to typed (a Levenshtein distance of at most 2, or a third of its
// length for long names), "" otherwise.
func didYouMean(typed string, names []string, prefix string) string {
	best, bestD := "", -1
	for _, n := range names {
		d := levenshtein(strings.ToLower(typed), n)
		if bestD < 0 || d < bestD || (d == bestD && n < best) {
			best, bestD = n, d
		}
	}
	if bestD < 0 || bestD > max(2, len(typed)/3) || bestD >= len(typed) {
		return ""
	}
	return " (did you mean " + prefix + best + "?)"
}

// levenshtein is the edit distance between a and b (insertions, deletions,
// substitutions), over bytes: flag and command names are ASCII.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
