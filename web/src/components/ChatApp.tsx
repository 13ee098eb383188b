// The signed-in screen: the sidebar (conversations, search, export and
// import) and the open conversation. On a narrow screen the sidebar is a
// drawer over the conversation.

import { useState } from "preact/hooks";
import { ChatView } from "./ChatView";
import { Sidebar } from "./Sidebar";

export function ChatApp({ conversationId }: { conversationId: string | null }) {
  // Bumped when the open conversation changed in a way the list shows.
  const [listVersion, setListVersion] = useState(0);
  const [drawer, setDrawer] = useState(false);
  return (
    <div class={drawer ? "layout drawer-open" : "layout"}>
      <Sidebar
        activeId={conversationId}
        version={listVersion}
        onNavigate={() => setDrawer(false)}
      />
      {drawer && (
        <button
          class="backdrop"
          aria-label="Close conversations"
          onClick={() => setDrawer(false)}
        />
      )}
      <div class="main">
        <header class="topbar">
          <button class="icon menu" aria-label="Conversations" onClick={() => setDrawer(!drawer)}>
            ☰
          </button>
        </header>
        {conversationId ? (
          <ChatView
            key={conversationId}
            conversationId={conversationId}
            onChanged={() => setListVersion((v) => v + 1)}
          />
        ) : (
          <div class="empty">
            <p>Pick a conversation, or start a new one.</p>
          </div>
        )}
      </div>
    </div>
  );
}
