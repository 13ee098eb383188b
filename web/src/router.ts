// A tiny path router: /c/<id> is a conversation, /s/<token> a public shared
// view, anything else the conversation list. The gateway serves index.html
// for these paths.

import { useEffect, useState } from "preact/hooks";

export type Route =
  { name: "home" } | { name: "conversation"; id: string } | { name: "share"; token: string };

export function parseRoute(path: string): Route {
  const c = /^\/c\/([^/]+)$/.exec(path);
  if (c) return { name: "conversation", id: decodeURIComponent(c[1]) };
  const s = /^\/s\/([^/]+)$/.exec(path);
  if (s) return { name: "share", token: decodeURIComponent(s[1]) };
  return { name: "home" };
}

export function navigate(path: string) {
  if (location.pathname !== path) {
    history.pushState(null, "", path);
    window.dispatchEvent(new PopStateEvent("popstate"));
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.pathname));
    window.addEventListener("popstate", on);
    return () => window.removeEventListener("popstate", on);
  }, []);
  return route;
}
