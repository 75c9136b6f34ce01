"""The Gradio UI: `layout.build_app` builds the page and wires each event to a controller method.

- `chat.ChatController`: ask, retry, stop, clicks in the chat and sources panels, feedback,
  and the /turn endpoint
- `history.HistoryController`: new/open/rename/delete conversation, the sidebar (Load more,
  title search), page load, and the /conversations endpoint
- `knowledge.KnowledgeController`: upload (and its staging and clean-up), chunks, delete, refresh
- `common`: escaped pop-ups, who is asking, the per-tab state; `sessions`: per-browser-session
  state on the server; `theme`: the theme, launch options and the panels' JavaScript
"""
