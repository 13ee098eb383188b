// Conversation list (new, rename, pin, archive, delete), search, export and
// import, logout.

import { useEffect, useState } from "preact/hooks";
import { api, messageOf } from "../api";
import { navigate } from "../router";
import { session } from "../session";
import type { Conversation } from "../types";
import { ConversationItem } from "./ConversationItem";
import { SearchResults } from "./SearchResults";
import { Transfer } from "./Transfer";

interface Page {
  conversations: Conversation[];
  next_page_token: string;
}

export function Sidebar(props: { activeId: string | null; version: number; onNavigate(): void }) {
  const [archived, setArchived] = useState(false);
  const [items, setItems] = useState<Conversation[]>([]);
  const [next, setNext] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState("");
  const [query, setQuery] = useState("");
  const [reload, setReload] = useState(0);

  const load = async (token: string) => {
    setLoading(true);
    setError("");
    try {
      const params = new URLSearchParams({ page_size: "50" });
      if (archived) params.set("archived", "true");
      if (token) params.set("page_token", token);
      const page = await api<Page>("GET", `/v1/conversations?${params}`);
      setItems((old) => (token ? [...old, ...page.conversations] : page.conversations));
      setNext(page.next_page_token);
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => void load(""), [archived, props.version, reload]);

  const create = async () => {
    try {
      const c = await api<Conversation>("POST", "/v1/conversations", {});
      setReload((n) => n + 1);
      navigate(`/c/${c.id}`);
      props.onNavigate();
    } catch (e) {
      setError(messageOf(e));
    }
  };

  const changed = (c: Conversation | null, id: string) => {
    if (!c || c.archived !== archived) {
      setItems((old) => old.filter((x) => x.id !== id));
      if (!c && props.activeId === id) navigate("/");
    }
    setReload((n) => n + 1);
  };

  return (
    <aside class="sidebar">
      <div class="sidebar-head">
        <button class="primary new-chat" onClick={create}>
          + New chat
        </button>
        <input
          class="search"
          type="search"
          placeholder="Search messages"
          aria-label="Search messages"
          value={query}
          onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
        />
      </div>
      {query.trim() ? (
        <SearchResults query={query.trim()} onOpen={props.onNavigate} />
      ) : (
        <nav class="conversations" aria-label="Conversations">
          <label class="toggle">
            <input
              type="checkbox"
              checked={archived}
              onChange={(e) => setArchived((e.target as HTMLInputElement).checked)}
            />
            Archived
          </label>
          {error && (
            <p class="error" role="alert">
              {error} <button onClick={() => void load("")}>Retry</button>
            </p>
          )}
          <ul>
            {items.map((c) => (
              <ConversationItem
                key={c.id}
                conversation={c}
                active={c.id === props.activeId}
                onOpen={props.onNavigate}
                onChanged={(n) => changed(n, c.id)}
              />
            ))}
          </ul>
          {loading && <p class="muted">Loading…</p>}
          {!loading && items.length === 0 && !error && (
            <p class="muted">{archived ? "No archived conversations." : "No conversations yet."}</p>
          )}
          {next && !loading && (
            <button class="link" onClick={() => void load(next)}>
              Load more
            </button>
          )}
        </nav>
      )}
      <div class="sidebar-foot">
        <Transfer onImported={() => setReload((n) => n + 1)} />
        <div class="account">
          <span class="muted" data-testid="username">
            {session.user?.username}
          </span>
          <button class="link" onClick={() => void session.logout().then(() => navigate("/"))}>
            Log out
          </button>
        </div>
      </div>
    </aside>
  );
}
