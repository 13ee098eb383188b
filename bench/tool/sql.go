package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"regexp"
	"strings"
)

// cppStrings concatenates the string literals and macro names of a C++
// expression such as `"SELECT " MESSAGE_COLUMNS " FROM messages"`, up to the
// first ';' outside a literal. Macros expand from macros.
func cppStrings(expr string, macros map[string]string) (string, error) {
	var out strings.Builder
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\\':
			i++
		case c == ';':
			return out.String(), nil
		case c == '"':
			i++
			for i < len(expr) && expr[i] != '"' {
				if expr[i] == '\\' && i+1 < len(expr) {
					switch expr[i+1] {
					case 'n':
						out.WriteByte('\n')
					case 't':
						out.WriteByte('\t')
					default:
						out.WriteByte(expr[i+1])
					}
					i += 2
					continue
				}
				out.WriteByte(expr[i])
				i++
			}
			if i >= len(expr) {
				return "", fmt.Errorf("unterminated string literal")
			}
			i++
		case c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
			j := i
			for j < len(expr) && (expr[j] == '_' || expr[j] >= 'A' && expr[j] <= 'Z' ||
				expr[j] >= 'a' && expr[j] <= 'z' || expr[j] >= '0' && expr[j] <= '9') {
				j++
			}
			value, ok := macros[expr[i:j]]
			if !ok {
				return "", fmt.Errorf("unknown name %q in a SQL constant", expr[i:j])
			}
			out.WriteString(value)
			i = j
		default:
			return "", fmt.Errorf("unexpected %q in a SQL constant", c)
		}
	}
	return out.String(), nil
}

var defineRe = regexp.MustCompile(`(?m)^#define\s+([A-Z_][A-Z0-9_]*)\s+((?:.*\\\n)*.*)$`)

// extractSQL returns the value of `constexpr char NAME[] = ...;` in a C++
// source file, with its #define'd string macros expanded: the very text the
// service prepares.
func extractSQL(source, name string) (string, error) {
	data, err := os.ReadFile(source)
	if err != nil {
		return "", err
	}
	text := string(data)
	macros := map[string]string{}
	for _, m := range defineRe.FindAllStringSubmatch(text, -1) {
		if v, err := cppStrings(m[2]+";", macros); err == nil {
			macros[m[1]] = v
		}
	}
	marker := "constexpr char " + name + "[] ="
	at := strings.Index(text, marker)
	if at < 0 {
		return "", fmt.Errorf("%s has no %q", source, marker)
	}
	return cppStrings(text[at+len(marker):], macros)
}

func cmdSQL(args []string) error {
	fs := flag.NewFlagSet("sql", flag.ExitOnError)
	src := fs.String("src", "", "C++ source file")
	name := fs.String("name", "", "name of the constant, e.g. kAppendSql")
	fs.Parse(args)
	sql, err := extractSQL(*src, *name)
	if err != nil {
		return err
	}
	fmt.Println(sql)
	return nil
}

// bindParams replaces $n by pgbench variables (":name"), highest n first so
// that $1 does not eat $10.
func bindParams(sql string, vars map[int]string) (string, error) {
	for n := 20; n >= 1; n-- {
		token := fmt.Sprintf("$%d", n)
		if v, ok := vars[n]; ok {
			sql = strings.ReplaceAll(sql, token, v)
		} else if strings.Contains(sql, token) {
			return "", fmt.Errorf("no binding for %s", token)
		}
	}
	return sql, nil
}

// The statement that opens every transaction of the services
// (common/db.cc, DbPool::Transact), with $1 as a pgbench variable.
// common/db.cc's kSetUserSql: it also checks that the account exists.
const setUserSQL = "SELECT EXISTS (SELECT 1 FROM users WHERE id = :user::uuid) FROM set_config('app.user_id', :user, true);"

// pgscript writes a pgbench script that runs, as one transaction, exactly
// what the message service runs for an append or a page of a listing:
// BEGIN; set_config; the statement of services/message/message_storage.cc;
// COMMIT.
//
// Append: pgbench variables cannot hold a fresh uuid, so the new message id
// ($3) is gen_random_uuid() in the database instead of a parameter made by
// the service, and they cannot be empty, so the model of a user message ($7)
// is an empty string literal; every other parameter is bound like the
// service binds it.
// The conversation is chosen uniformly at random among the -convs ones for
// each transaction, like the ghz and wrk loads do.
func cmdPgScript(args []string) error {
	fs := flag.NewFlagSet("pgscript", flag.ExitOnError)
	src := fs.String("src", "", "services/message/message_storage.cc")
	kind := fs.String("kind", "append", "append or list")
	convsFile := fs.String("convs", "", "conversation ids, one a line (append)")
	out := fs.String("out", "", "script file to write")
	fs.Parse(args)
	var script strings.Builder
	switch *kind {
	case "append":
		sql, err := extractSQL(*src, "kAppendSql")
		if err != nil {
			return err
		}
		convs, err := readLines(*convsFile)
		if err != nil {
			return err
		}
		fmt.Fprintf(&script, "\\set k random(0, %d)\nBEGIN;\n%s\n", len(convs)-1, setUserSQL)
		for i := range convs {
			bound, err := bindParams(sql, map[int]string{
				1: ":user", 2: fmt.Sprintf(":c%d", i), 3: "gen_random_uuid()", 4: ":role",
				5: ":content", 6: ":status", 7: "''", 8: ":ts", 9: ":meta",
			})
			if err != nil {
				return err
			}
			keyword := "\\elif"
			if i == 0 {
				keyword = "\\if"
			}
			fmt.Fprintf(&script, "%s :k = %d\n%s;\n", keyword, i, bound)
		}
		script.WriteString("\\endif\nCOMMIT;\n")
	case "list":
		sql, err := extractSQL(*src, "kListAscendingSql")
		if err != nil {
			return err
		}
		bound, err := bindParams(sql, map[int]string{1: ":user", 2: ":conv", 3: ":after", 4: ":lim", 5: "4194304"})
		if err != nil {
			return err
		}
		fmt.Fprintf(&script, "BEGIN;\n%s\n%s;\nCOMMIT;\n", setUserSQL, bound)
	default:
		return fmt.Errorf("-kind must be append or list")
	}
	return os.WriteFile(*out, []byte(script.String()), 0o644)
}

// ghzdata writes the call data of a ghz run: a JSON array that ghz sends
// round-robin, here one CreateMessageRequest per element with the
// conversation picked at random (seeded, so every run sends the same).
func cmdGhzData(args []string) error {
	fs := flag.NewFlagSet("ghzdata", flag.ExitOnError)
	convsFile := fs.String("convs", "", "conversation ids, one a line")
	n := fs.Int("n", 4096, "elements")
	content := fs.String("content", "", "message content")
	out := fs.String("out", "", "file to write")
	fs.Parse(args)
	convs, err := readLines(*convsFile)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewSource(1))
	var b strings.Builder
	b.WriteString("[")
	for i := 0; i < *n; i++ {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `{"conversation_id":%q,"message":{"role":"user","content":%q}}`,
			convs[rng.Intn(len(convs))], *content)
	}
	b.WriteString("]\n")
	return os.WriteFile(*out, []byte(b.String()), 0o644)
}
