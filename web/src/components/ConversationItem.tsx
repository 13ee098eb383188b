import { useState } from "preact/hooks";
import { api, messageOf } from "../api";
import { navigate } from "../router";
import type { Conversation } from "../types";

export function ConversationItem(props: {
  conversation: Conversation;
  active: boolean;
  onOpen(): void;
  onChanged(c: Conversation | null): void;
}) {
  const c = props.conversation;
  const [renaming, setRenaming] = useState(false);
  const [title, setTitle] = useState(c.title);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const patch = async (body: Partial<Conversation>) => {
    setBusy(true);
    setError("");
    try {
      props.onChanged(await api<Conversation>("PATCH", `/v1/conversations/${c.id}`, body));
      return true;
    } catch (e) {
      setError(messageOf(e));
      return false;
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    if (!confirm(`Delete “${c.title}” and all its messages?`)) return;
    setBusy(true);
    try {
      await api("DELETE", `/v1/conversations/${c.id}`);
      props.onChanged(null);
    } catch (e) {
      setError(messageOf(e));
      setBusy(false);
    }
  };

  return (
    <li class={props.active ? "conversation active" : "conversation"} data-id={c.id}>
      {renaming ? (
        <form
          class="rename"
          onSubmit={async (e) => {
            e.preventDefault();
            if (await patch({ title })) setRenaming(false);
          }}
        >
          <input
            aria-label="Title"
            value={title}
            onInput={(e) => setTitle((e.target as HTMLInputElement).value)}
            onKeyDown={(e) => e.key === "Escape" && setRenaming(false)}
            autoFocus
          />
          <button type="submit" disabled={busy}>
            Save
          </button>
        </form>
      ) : (
        <a
          href={`/c/${c.id}`}
          class="title"
          onClick={(e) => {
            e.preventDefault();
            navigate(`/c/${c.id}`);
            props.onOpen();
          }}
        >
          {c.pinned && <span aria-label="pinned">📌 </span>}
          {c.title}
        </a>
      )}
      <div class="actions">
        <button
          title="Rename"
          onClick={() => {
            setTitle(c.title);
            setRenaming(true);
          }}
        >
          Rename
        </button>
        <button
          title={c.pinned ? "Unpin" : "Pin"}
          onClick={() => void patch({ pinned: !c.pinned })}
        >
          {c.pinned ? "Unpin" : "Pin"}
        </button>
        <button
          title={c.archived ? "Unarchive" : "Archive"}
          onClick={() => void patch({ archived: !c.archived })}
        >
          {c.archived ? "Unarchive" : "Archive"}
        </button>
        <button title="Delete" class="danger" onClick={remove}>
          Delete
        </button>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </li>
  );
}
