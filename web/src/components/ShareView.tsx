// The public, read-only view of a share link (/s/<token>): no account
// needed.

import { useEffect, useState } from "preact/hooks";
import { api, messageOf } from "../api";
import { renderMarkdown } from "../markdown";
import type { SharedConversation } from "../types";

export function ShareView({ token }: { token: string }) {
  const [shared, setShared] = useState<SharedConversation | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    api<SharedConversation>("GET", `/v1/shares/${encodeURIComponent(token)}`, undefined, {
      auth: false,
    }).then(setShared, (e) => setError(messageOf(e)));
  }, [token]);

  return (
    <main class="shared">
      {error ? (
        <p class="error" role="alert">
          This link does not work: {error}
        </p>
      ) : !shared ? (
        <p class="muted">Loading…</p>
      ) : (
        <>
          <h1 data-testid="shared-title">{shared.title}</h1>
          <p class="muted">Shared {new Date(shared.created_at).toLocaleString()} · read only</p>
          {(shared.messages ?? []).map((m) => (
            <article class={`message ${m.role}`}>
              {m.role === "assistant" ? (
                <div
                  class="content markdown"
                  dangerouslySetInnerHTML={{ __html: renderMarkdown(m.content) }}
                />
              ) : (
                <div class="content plain">{m.content}</div>
              )}
            </article>
          ))}
        </>
      )}
    </main>
  );
}
