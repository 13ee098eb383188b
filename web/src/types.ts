// The shapes of the REST API (docs/api.md), as far as the client reads them.

export interface User {
  id: string;
  username: string;
  email: string;
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
}

export interface Conversation {
  id: string;
  title: string;
  archived: boolean;
  pinned: boolean;
  message_count: number;
  active_leaf_id: string;
  updated_at: string;
}

export type MessageStatus = "complete" | "in_progress" | "incomplete" | "failed";

export interface Message {
  id: string;
  conversation_id: string;
  parent_id: string;
  role: "user" | "assistant" | "system";
  content: string;
  status: MessageStatus;
  model: string;
  sibling_index: number;
  sibling_count: number;
  created_at: string;
}

export interface SearchResult {
  conversation_id: string;
  conversation_title: string;
  message_id: string;
  role: string;
  snippet: string;
  created_at: string;
}

export interface Share {
  id: string;
  token?: string;
  created_at: string;
  message_count?: number;
}

export interface SharedConversation {
  title: string;
  messages: Message[];
  created_at: string;
}

export interface ErrorDetail {
  field: string;
  description: string;
}
