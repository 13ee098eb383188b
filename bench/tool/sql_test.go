package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The pgbench scripts of `make bench` come from the services' own SQL
// constants: every kind must still be made from today's sources (a macro
// moved to a header once broke the listing's).
func TestPgScriptFromTheServicesSources(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	convs := filepath.Join(dir, "convs")
	if err := os.WriteFile(convs, []byte("0191d1f0-0000-7000-8000-000000000001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind, src string
		want      []string
	}{
		{"append", "services/message/message_storage.cc", []string{"append_message(", ":c0::uuid"}},
		{"list", "services/message/message_storage.cc", []string{"FROM messages", "m.seq > :after", "LIMIT :lim",
			"'00000000-0000-0000-0000-000000000000'::uuid"}},
		{"convlist", "services/conversation/conversation_storage.cc", []string{"FROM conversations", "LIMIT :lim"}},
		{"switch", "services/conversation/conversation_storage.cc", []string{"activate_branch(", ":x", ":o"}},
	} {
		out := filepath.Join(dir, c.kind+".sql")
		args := []string{"-src", filepath.Join(root, c.src), "-kind", c.kind, "-out", out}
		if c.kind == "append" {
			args = append(args, "-convs", convs)
		}
		if err := cmdPgScript(args); err != nil {
			t.Errorf("pgscript -kind %s: %v", c.kind, err)
			continue
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		script := string(data)
		switch c.kind {
		case "list", "convlist": // DbPool::ReadRows
			// The message listings are read with their generic plan, the
			// conversations' as PostgreSQL chooses.
			setUser := "SELECT set_config('app.user_id', :user, true) FROM users WHERE id = :user::uuid;\n"
			if c.kind == "list" {
				setUser = "SELECT set_config('app.user_id', :user, true), set_config('plan_cache_mode', 'force_generic_plan', true) FROM users WHERE id = :user::uuid;\n"
			}
			if !strings.HasPrefix(script, "\\startpipeline\n"+setUser) ||
				!strings.HasSuffix(script, ";\n\\endpipeline\n") {
				t.Errorf("%s: the script is not the one-round-trip read of the services:\n%s", c.kind, script)
			}
		default: // DbPool::Transact
			if !strings.HasPrefix(script, "BEGIN;\n"+setUserSQL) && !strings.Contains(script, "\nBEGIN;\n"+setUserSQL) {
				t.Errorf("%s: the script does not open like the services' transactions:\n%s", c.kind, script)
			}
		}
		for _, w := range c.want {
			if !strings.Contains(script, w) {
				t.Errorf("%s: the script lacks %q:\n%s", c.kind, w, script)
			}
		}
		if paramRe.MatchString(script) {
			t.Errorf("%s: a $n is left unbound:\n%s", c.kind, script)
		}
	}
}
