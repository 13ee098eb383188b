import { useEffect, useState } from "preact/hooks";
import { session } from "../session";
import { useRoute } from "../router";
import { AuthPage } from "./AuthPage";
import { ChatApp } from "./ChatApp";
import { ShareView } from "./ShareView";

export function App() {
  const route = useRoute();
  const [, setTick] = useState(0);
  useEffect(() => session.subscribe(() => setTick((n) => n + 1)), []);

  if (route.name === "share") return <ShareView token={route.token} />;
  if (!session.signedIn) return <AuthPage />;
  return <ChatApp conversationId={route.name === "conversation" ? route.id : null} />;
}
