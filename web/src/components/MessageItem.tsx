// One message of the branch: a user's text as typed (editable as a new
// version), an assistant's reply as sanitized Markdown (regenerable), and
// the "< 2/3 >" switcher when it has siblings.

import { useMemo, useState } from "preact/hooks";
import { renderMarkdown } from "../markdown";
import type { Message } from "../types";

export function MessageItem(props: {
  message: Message;
  streaming: boolean;
  busy: boolean;
  error?: string;
  onRegenerate(): void;
  onEdit(text: string): void;
  onSwitch(step: number): void;
}) {
  const m = props.message;
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(m.content);
  const html = useMemo(
    () => (m.role === "assistant" ? renderMarkdown(m.content) : ""),
    [m.role, m.content],
  );

  return (
    <article class={`message ${m.role}`} data-id={m.id} data-status={m.status}>
      {editing ? (
        <form
          class="edit"
          onSubmit={(e) => {
            e.preventDefault();
            if (!draft.trim()) return;
            setEditing(false);
            props.onEdit(draft);
          }}
        >
          <textarea
            aria-label="Edit message"
            value={draft}
            rows={3}
            onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
          />
          <div class="row">
            <button type="submit" class="primary">
              Save and send
            </button>
            <button type="button" onClick={() => setEditing(false)}>
              Cancel
            </button>
          </div>
        </form>
      ) : m.role === "assistant" ? (
        <div class="content markdown" dangerouslySetInnerHTML={{ __html: html }} />
      ) : (
        <div class="content plain">{m.content}</div>
      )}
      {props.streaming && (
        <span class="typing" aria-label="Generating">
          ●●●
        </span>
      )}
      {!props.streaming && (m.status === "incomplete" || m.status === "failed") && (
        <p class="status-note">{m.status === "failed" ? "The reply failed." : "Stopped."}</p>
      )}
      {props.error && (
        <p class="error" role="alert">
          {props.error}
        </p>
      )}
      <footer class="message-tools">
        {m.sibling_count > 1 && (
          <span class="versions" aria-label="Versions">
            <button
              aria-label="Previous version"
              disabled={props.busy || m.sibling_index === 0}
              onClick={() => props.onSwitch(-1)}
            >
              ‹
            </button>
            <span data-testid="version">
              {m.sibling_index + 1}/{m.sibling_count}
            </span>
            <button
              aria-label="Next version"
              disabled={props.busy || m.sibling_index + 1 >= m.sibling_count}
              onClick={() => props.onSwitch(1)}
            >
              ›
            </button>
          </span>
        )}
        {m.role === "user" && !editing && (
          <button
            disabled={props.busy}
            onClick={() => {
              setDraft(m.content);
              setEditing(true);
            }}
          >
            Edit
          </button>
        )}
        {m.role === "assistant" && (
          <button disabled={props.busy} onClick={props.onRegenerate}>
            Regenerate
          </button>
        )}
      </footer>
    </article>
  );
}
