package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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

var (
	defineRe  = regexp.MustCompile(`(?m)^#define\s+([A-Z_][A-Z0-9_]*)\s+((?:.*\\\n)*.*)$`)
	includeRe = regexp.MustCompile(`(?m)^#include\s+"((?:services|common)/[^"]+\.h)"`)
)

// addMacros reads the #define'd string macros of a C++ file into macros:
// first those of the project headers it includes (an include path is
// relative to the repository root, the first directory above the file that
// holds it), then its own.
func addMacros(file, text string, macros map[string]string, seen map[string]bool) {
	for _, m := range includeRe.FindAllStringSubmatch(text, -1) {
		header, ok := findUp(file, m[1])
		if !ok || seen[header] {
			continue
		}
		seen[header] = true
		if data, err := os.ReadFile(header); err == nil {
			addMacros(header, string(data), macros, seen)
		}
	}
	for _, m := range defineRe.FindAllStringSubmatch(text, -1) {
		if v, err := cppStrings(m[2]+";", macros); err == nil {
			macros[m[1]] = v
		}
	}
}

// findUp returns the path of rel (a path from the repository root, such as
// "common/db.cc") as seen from file: in the first directory above file that
// holds it.
func findUp(file, rel string) (string, bool) {
	for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
		path := filepath.Join(dir, rel)
		if _, err := os.Stat(path); err == nil {
			return path, true
		}
		if dir == filepath.Dir(dir) {
			return "", false
		}
	}
}

// extractSQL returns the value of `constexpr char NAME[] = ...;` in a C++
// source file (services/<name>/<file>.cc), with its #define'd string
// macros and those of the project headers it includes expanded: the very
// text the service prepares.
func extractSQL(source, name string) (string, error) {
	data, err := os.ReadFile(source)
	if err != nil {
		return "", err
	}
	text := string(data)
	macros := map[string]string{}
	addMacros(source, text, macros, map[string]bool{})
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

var paramRe = regexp.MustCompile(`\$([0-9]+)`)

// bindParams replaces every $n by vars[n] (a pgbench variable such as
// ":name", or a literal), all in one pass so that $1 never eats $10. A $n
// without a binding is an error, and so is a binding of a $n the statement
// does not have: a statement whose parameters changed fails here instead of
// running with its arguments in the wrong places.
func bindParams(sql string, vars map[int]string) (string, error) {
	used := map[int]bool{}
	var missing []string
	bound := paramRe.ReplaceAllStringFunc(sql, func(token string) string {
		n, _ := strconv.Atoi(token[1:])
		v, ok := vars[n]
		if !ok {
			missing = append(missing, token)
			return token
		}
		used[n] = true
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no binding for %s in %q", strings.Join(missing, ", "), sql)
	}
	for n := range vars {
		if !used[n] {
			return "", fmt.Errorf("$%d is bound but not in %q", n, sql)
		}
	}
	return bound, nil
}

// The statement that opens every transaction of the services
// (common/db.cc, DbPool::Transact), with $1 as a pgbench variable.
// common/db.cc's kSetUserSql: it also checks that the account exists.
const setUserSQL = "SELECT EXISTS (SELECT 1 FROM users WHERE id = :user::uuid) FROM set_config('app.user_id', :user, true);"

// pgscript writes a pgbench script that runs, as one transaction, exactly
// what a service runs for one operation: BEGIN; set_config; the statements
// of the service's storage code; COMMIT. The listings read in one round
// trip (common/db_reader.h, DbReader): the account's setting and the
// statement in one pipeline, one implicit transaction, as the services send
// them (Bind/Execute of both, then one Sync).
//
// Append (-src services/message/message_storage.cc, kAppendSql): pgbench
// variables cannot hold a fresh uuid, so the new message id ($3) is
// gen_random_uuid() in the database instead of a parameter made by the
// service, and they cannot be empty or NULL, so the parent ($4) is a NULL
// literal (a create without parent_id: under the leaf of the active branch,
// as the service binds it) and the model of a user message ($8) an empty
// string literal; every other parameter is bound like the service binds it.
// The conversation is chosen uniformly at random among the -convs ones for
// each transaction, like the ghz and wrk loads do.
//
// List (kListAscendingSql): a page of the active branch after :after.
//
// Convlist (-src services/conversation/conversation_storage.cc,
// kListFirstSql): the first page of ListConversations, :lim rows (the page
// size and one more, as the service asks).
//
// Switch (-src services/conversation/conversation_storage.cc): what
// UpdateConversation runs for update_mask "active_message_id": kUpdateSql
// with every optional field NULL (unchanged), then kActivateBranchSql. The
// target alternates between the messages :x and :o, one transaction each:
// the client's variable :flip (start it with -D flip=0) survives from one
// transaction to the next, so every switch really moves the branch.
func cmdPgScript(args []string) error {
	fs := flag.NewFlagSet("pgscript", flag.ExitOnError)
	src := fs.String("src", "", "services/message/message_storage.cc (append, list) or "+
		"services/conversation/conversation_storage.cc (convlist, switch)")
	kind := fs.String("kind", "append", "append, list, convlist or switch")
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
				1: ":user", 2: fmt.Sprintf(":c%d", i), 3: "gen_random_uuid()", 4: "NULL",
				5: ":role", 6: ":content", 7: ":status", 8: "''", 9: ":ts", 10: ":meta",
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
		// The message listings are read with their generic plan
		// (services/message/message_storage.cc, generic_plan).
		if err := writeOneTripRead(&script, *src, "kSetUserIfExistsGenericSql", bound); err != nil {
			return err
		}
	case "convlist":
		sql, err := extractSQL(*src, "kListFirstSql")
		if err != nil {
			return err
		}
		// The first page of the user's conversations that are not archived,
		// without a title filter.
		bound, err := bindParams(sql, map[int]string{1: ":user", 2: "false", 3: ":lim"})
		if err != nil {
			return err
		}
		if err := writeOneTripRead(&script, *src, "kSetUserIfExistsSql", bound); err != nil {
			return err
		}
	case "switch":
		update, err := extractSQL(*src, "kUpdateSql")
		if err != nil {
			return err
		}
		activate, err := extractSQL(*src, "kActivateBranchSql")
		if err != nil {
			return err
		}
		update, err = bindParams(update, map[int]string{
			1: ":user", 2: ":conv", 3: "NULL", 4: "NULL", 5: "NULL", 6: "NULL", 7: ":ts",
		})
		if err != nil {
			return err
		}
		toX, err := bindParams(activate, map[int]string{1: ":user", 2: ":conv", 3: ":x"})
		if err != nil {
			return err
		}
		toO, err := bindParams(activate, map[int]string{1: ":user", 2: ":conv", 3: ":o"})
		if err != nil {
			return err
		}
		fmt.Fprintf(&script, "\\set flip 1 - :flip\nBEGIN;\n%s\n%s;\n\\if :flip = 1\n%s;\n\\else\n%s;\n\\endif\nCOMMIT;\n",
			setUserSQL, update, toX, toO)
	default:
		return fmt.Errorf("-kind must be append, list, convlist or switch")
	}
	return os.WriteFile(*out, []byte(script.String()), 0o644)
}

// writeOneTripRead writes the pipeline of DbReader (and DbPool::ReadRows)
// around a bound statement, the account's setting made by
// common/db_statements.h's constant setUserConst (the generic plan's or
// not); src locates common/db_statements.h.
func writeOneTripRead(script *strings.Builder, src, setUserConst, statement string) error {
	db, ok := findUp(src, "common/db_statements.h")
	if !ok {
		return fmt.Errorf("no common/db_statements.h above %s", src)
	}
	setUser, err := extractSQL(db, setUserConst)
	if err != nil {
		return err
	}
	setUser, err = bindParams(setUser, map[int]string{1: ":user"})
	if err != nil {
		return err
	}
	fmt.Fprintf(script, "\\startpipeline\n%s;\n%s;\n\\endpipeline\n", setUser, statement)
	return nil
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
