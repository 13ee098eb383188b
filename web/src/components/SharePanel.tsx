// Share links of a conversation: create (the link is shown once: the API
// keeps only a hash of its token), copy, list and revoke.

import { useState } from "preact/hooks";
import { api, messageOf } from "../api";
import type { Share } from "../types";

export function SharePanel({ conversationId }: { conversationId: string }) {
  const path = `/v1/conversations/${conversationId}/shares`;
  const [open, setOpen] = useState(false);
  const [shares, setShares] = useState<Share[] | null>(null);
  const [link, setLink] = useState("");
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState("");

  const load = async () => {
    setError("");
    try {
      setShares((await api<{ shares: Share[] }>("GET", path)).shares ?? []);
    } catch (e) {
      setError(messageOf(e));
    }
  };

  const create = async () => {
    setError("");
    try {
      const s = await api<Share>("POST", path, {});
      setLink(`${location.origin}/s/${encodeURIComponent(s.token ?? "")}`);
      setCopied(false);
      await load();
    } catch (e) {
      setError(messageOf(e));
    }
  };

  const revoke = async (id: string) => {
    try {
      await api("DELETE", `${path}/${id}`);
      await load();
    } catch (e) {
      setError(messageOf(e));
    }
  };

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(link);
      setCopied(true);
    } catch {
      setError("the browser refused the clipboard: select the link and copy it");
    }
  };

  return (
    <div class="share">
      <button
        onClick={() => {
          setOpen(!open);
          if (!open) void load();
        }}
        aria-expanded={open}
      >
        Share
      </button>
      {open && (
        <div class="share-panel" role="dialog" aria-label="Share links">
          <button class="primary" onClick={create}>
            Create link
          </button>
          {link && (
            <div class="row">
              <input
                readOnly
                value={link}
                aria-label="Share link"
                onFocus={(e) => (e.target as HTMLInputElement).select()}
              />
              <button onClick={copy}>{copied ? "Copied" : "Copy"}</button>
            </div>
          )}
          {error && (
            <p class="error" role="alert">
              {error}
            </p>
          )}
          {shares === null ? (
            <p class="muted">Loading…</p>
          ) : shares.length === 0 ? (
            <p class="muted">No links yet.</p>
          ) : (
            <ul class="shares">
              {shares.map((s) => (
                <li>
                  <span>{new Date(s.created_at).toLocaleString()}</span>
                  <button class="danger" onClick={() => void revoke(s.id)}>
                    Revoke
                  </button>
                </li>
              ))}
            </ul>
          )}
          <p class="muted">A link shows the conversation as it is now, to anyone who has it.</p>
        </div>
      )}
    </div>
  );
}
