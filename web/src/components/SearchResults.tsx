// Results of GET /v1/search for the sidebar's query, fetched 250 ms after
// the last keystroke. Snippets hold <mark> around matches and escaped text.

import { useEffect, useState } from "preact/hooks";
import { api, messageOf } from "../api";
import { renderSnippet } from "../markdown";
import { navigate } from "../router";
import type { SearchResult } from "../types";

export function SearchResults({ query, onOpen }: { query: string; onOpen(): void }) {
  const [results, setResults] = useState<SearchResult[] | null>(null);
  const [error, setError] = useState("");

  useEffect(() => {
    let live = true;
    setError("");
    const timer = window.setTimeout(async () => {
      try {
        const page = await api<{ results: SearchResult[] }>(
          "GET",
          `/v1/search?${new URLSearchParams({ q: query, page_size: "30" })}`,
        );
        if (live) setResults(page.results);
      } catch (e) {
        if (live) {
          setResults([]);
          setError(messageOf(e));
        }
      }
    }, 250);
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [query]);

  if (error)
    return (
      <p class="error" role="alert">
        {error}
      </p>
    );
  if (results === null) return <p class="muted">Searching…</p>;
  if (results.length === 0) return <p class="muted">No matches.</p>;
  return (
    <ul class="search-results" aria-label="Search results">
      {results.map((r) => (
        <li>
          <a
            href={`/c/${r.conversation_id}`}
            onClick={(e) => {
              e.preventDefault();
              navigate(`/c/${r.conversation_id}`);
              onOpen();
            }}
          >
            <strong>{r.conversation_title}</strong>
            <span class="snippet" dangerouslySetInnerHTML={{ __html: renderSnippet(r.snippet) }} />
          </a>
        </li>
      ))}
    </ul>
  );
}
