// The message box: Enter sends, Shift+Enter starts a new line; Stop cancels
// the reply being generated.

import { useState } from "preact/hooks";

export function Composer(props: {
  /** False while the conversation loads. */
  ready: boolean;
  busy: boolean;
  streaming: boolean;
  /** Resolves to false when nothing was sent: the text comes back. */
  onSend(text: string): Promise<boolean>;
  onStop(): void;
}) {
  const [text, setText] = useState("");
  const send = () => {
    if (!text.trim() || props.busy || !props.ready) return;
    const sent = text;
    setText("");
    void props.onSend(sent).then((ok) => {
      if (!ok) setText((now) => now || sent);
    });
  };
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
    >
      <textarea
        aria-label="Message"
        placeholder="Message (Enter to send, Shift+Enter for a new line)"
        rows={2}
        value={text}
        disabled={!props.ready}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            send();
          }
        }}
      />
      {props.streaming ? (
        <button type="button" class="danger" onClick={props.onStop}>
          Stop
        </button>
      ) : (
        <button type="submit" class="primary" disabled={props.busy || !text.trim()}>
          Send
        </button>
      )}
    </form>
  );
}
