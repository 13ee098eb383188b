// One conversation: its active branch (older pages load as you scroll up),
// the composer, and the reply streams: Chat, Regenerate, edit as a new
// version (Chat with parent_id), resume after a reload (StreamReply from
// the stored text's length) and stop (CancelReply).

import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, messageOf } from "../api";
import { applyDelta, codePoints, openStream, type StreamHandlers } from "../stream";
import type { Conversation, Message } from "../types";
import { Composer } from "./Composer";
import { MessageItem } from "./MessageItem";
import { SharePanel } from "./SharePanel";

const PAGE = 30;

interface Page {
  messages: Message[];
  next_page_token: string;
}

export function ChatView(props: { conversationId: string; onChanged(): void }) {
  const base = `/v1/conversations/${props.conversationId}`;
  const [conv, setConv] = useState<Conversation | null>(null);
  const [messages, setMessages] = useState<Message[]>([]);
  const [older, setOlder] = useState("");
  const [loading, setLoading] = useState(true);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [error, setError] = useState("");
  const [replyErrors, setReplyErrors] = useState<Record<string, string>>({});
  const [streamingId, setStreamingId] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const sentinel = useRef<HTMLDivElement>(null);
  const stickToBottom = useRef(true);
  const keepFromBottom = useRef<number | null>(null);
  // Bumped by every stream and load: an answer of an older load is dropped.
  const epoch = useRef(0);

  const update = (id: string, f: (m: Message) => Message) =>
    setMessages((list) => list.map((m) => (m.id === id ? f(m) : m)));

  /**
   * Runs one reply stream; the messages it makes are appended. Resolves to
   * false when it failed before the server stored anything.
   */
  const stream = async (
    method: "GET" | "POST",
    path: string,
    body: unknown,
    headers: Record<string, string> = {},
    resumeId?: string,
  ): Promise<boolean> => {
    let stored = false;
    const controller = new AbortController();
    abort.current = controller;
    epoch.current++;
    stickToBottom.current = true;
    let replyId = resumeId ?? "";
    if (resumeId) setStreamingId(resumeId);
    setBusy(true);
    const handlers: StreamHandlers = {
      message: (m) => {
        stored = true;
        setMessages((list) => [...list, m]);
      },
      reply: (m) => {
        stored = true;
        replyId = m.id;
        setStreamingId(m.id);
        setMessages((list) => [...list, m]);
      },
      delta: (d) => update(replyId, (m) => ({ ...m, content: applyDelta(m.content, d) })),
      done: (m) => update(m.id, () => m),
      error: (e) => {
        setReplyErrors((r) => ({ ...r, [replyId]: e.message }));
        void refreshMessage(replyId);
      },
    };
    try {
      await openStream(method, path, body, handlers, controller.signal, headers);
    } catch (e) {
      if ((e as Error).name !== "AbortError") {
        if (replyId) setReplyErrors((r) => ({ ...r, [replyId]: messageOf(e) }));
        else setError(messageOf(e));
      }
    } finally {
      if (abort.current === controller) abort.current = null;
      setStreamingId(null);
      setBusy(false);
    }
    if (!controller.signal.aborted) {
      // The first reply titles an untitled conversation.
      void api<Conversation>("GET", base).then(setConv, () => undefined);
      props.onChanged();
    }
    return stored || resumeId !== undefined;
  };

  const refreshMessage = async (id: string) => {
    if (!id) return;
    try {
      const m = await api<Message>("GET", `${base}/messages/${id}`);
      update(id, () => m);
    } catch {
      // The stream's error is already shown.
    }
  };

  const resume = (m: Message) =>
    stream(
      "GET",
      `${base}/messages/${m.id}/stream`,
      undefined,
      {
        "Last-Event-ID": String(codePoints(m.content)),
      },
      m.id,
    );

  const loadLatest = async () => {
    const mine = ++epoch.current;
    setLoading(true);
    setError("");
    try {
      const [c, page] = await Promise.all([
        api<Conversation>("GET", base),
        api<Page>("GET", `${base}/messages?order=desc&page_size=${PAGE}`),
      ]);
      if (mine !== epoch.current) return;
      const list = page.messages.slice().reverse();
      setConv(c);
      setMessages(list);
      setOlder(page.next_page_token);
      stickToBottom.current = true;
      const last = list[list.length - 1];
      if (last && last.role === "assistant" && last.status === "in_progress") void resume(last);
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setLoading(false);
    }
  };

  const loadOlder = async () => {
    if (!older || loadingOlder) return;
    setLoadingOlder(true);
    try {
      const page = await api<Page>(
        "GET",
        `${base}/messages?order=desc&page_size=${PAGE}&page_token=${encodeURIComponent(older)}`,
      );
      const el = scroller.current;
      keepFromBottom.current = el ? el.scrollHeight - el.scrollTop : null;
      setMessages((list) => [...page.messages.slice().reverse(), ...list]);
      setOlder(page.next_page_token);
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setLoadingOlder(false);
    }
  };

  useEffect(() => {
    void loadLatest();
    return () => abort.current?.abort();
  }, [props.conversationId]);

  // Scroll: keep the view where it was when older messages are prepended,
  // follow the bottom while the reader is there.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (keepFromBottom.current !== null) {
      el.scrollTop = el.scrollHeight - keepFromBottom.current;
      keepFromBottom.current = null;
    } else if (stickToBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [messages]);

  useEffect(() => {
    const el = sentinel.current;
    if (!el) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) void loadOlder();
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, [older, loadingOlder, loading]);

  const send = (content: string) => stream("POST", `${base}/chat`, { content });

  const stop = async () => {
    const id = streamingId;
    if (!id) return;
    try {
      const m = await api<Message>("POST", `${base}/messages/${id}:cancel`, {});
      abort.current?.abort();
      update(id, () => m);
    } catch (e) {
      setReplyErrors((r) => ({ ...r, [id]: messageOf(e) }));
    }
  };

  /** The messages of the branch down to and including the one with id. */
  const upTo = (id: string) => {
    const i = messages.findIndex((m) => m.id === id);
    return i < 0 ? [] : messages.slice(0, i + 1);
  };

  const regenerate = (m: Message) => {
    setMessages(m.parent_id ? upTo(m.parent_id) : []);
    return stream("POST", `${base}/messages/${m.id}:regenerate`, {});
  };

  const edit = (m: Message, content: string) => {
    setMessages(m.parent_id ? upTo(m.parent_id) : []);
    return stream("POST", `${base}/chat`, { content, parent_id: m.parent_id });
  };

  /** Shows the previous (-1) or next (+1) version of m. */
  const switchVersion = async (m: Message, step: number) => {
    setBusy(true);
    try {
      const siblings = await siblingsOf(base, m);
      const target = siblings[m.sibling_index + step];
      if (!target) throw new ApiError(404, "NOT_FOUND", "that version no longer exists");
      await api("PATCH", base, { active_message_id: target.id });
      await loadLatest();
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="chat" aria-busy={loading}>
      <header class="chat-head">
        <h2 data-testid="conversation-title">{conv?.title ?? "…"}</h2>
        {conv && <SharePanel conversationId={conv.id} />}
      </header>
      <div
        class="messages"
        ref={scroller}
        onScroll={(e) => {
          const el = e.currentTarget as HTMLDivElement;
          stickToBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        }}
      >
        <div ref={sentinel} class="sentinel" />
        {loadingOlder && <p class="muted center">Loading earlier messages…</p>}
        {loading && <p class="muted center">Loading…</p>}
        {error && (
          <p class="error center" role="alert">
            {error} <button onClick={() => void loadLatest()}>Retry</button>
          </p>
        )}
        {!loading && messages.length === 0 && !error && (
          <p class="muted center">Say something to start.</p>
        )}
        {messages.map((m) => (
          <MessageItem
            key={m.id}
            message={m}
            streaming={m.id === streamingId}
            busy={busy}
            error={replyErrors[m.id]}
            onRegenerate={() => void regenerate(m)}
            onEdit={(text) => void edit(m, text)}
            onSwitch={(step) => void switchVersion(m, step)}
          />
        ))}
      </div>
      <Composer
        ready={!loading}
        busy={busy}
        streaming={streamingId !== null}
        onSend={send}
        onStop={stop}
      />
    </section>
  );
}

/**
 * The messages that share m's parent, in creation order. The API gives
 * each message its sibling_index and sibling_count but no route lists a
 * message's siblings, so this pages every branch (branch=all) and keeps
 * those with m's parent.
 */
async function siblingsOf(base: string, m: Message): Promise<Message[]> {
  const found: Message[] = [];
  let token = "";
  do {
    const params = new URLSearchParams({ branch: "all", page_size: "200" });
    if (token) params.set("page_token", token);
    const page = await api<Page>("GET", `${base}/messages?${params}`);
    for (const x of page.messages) if (x.parent_id === m.parent_id) found.push(x);
    token = page.next_page_token;
  } while (token && found.length < m.sibling_count);
  return found;
}
