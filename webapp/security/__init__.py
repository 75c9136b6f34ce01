"""The web server's guards: who may name which upload, sessions that expire, login throttling,
origins, cookies and the ASGI middleware that enforces them in front of every route, Gradio's
included.

Gradio 6.31 needs four work-arounds, each marked "Gradio 6.31" below:
- its upload step accepts a FileData whose ``path`` names any server file and copies it into its
  cache before app code runs (a mounted app never sets ``has_launched``, which is what turns on
  its own check), so `guard_file_inputs` refuses, before Gradio touches anything, every path that
  did not come from this user's own upload (`UploadLedger`);
- its CORS middleware echoes any Origin with credentials when Host is not localhost, and its
  login cookie is ``SameSite=None``: the parent app configures CORS itself (Gradio then adds
  none) and `WebGuard` rewrites the cookies to ``SameSite=Lax`` and refuses cross-site writes;
- its event results and queue sessions are bound only to unguessable ids: `WebGuard` binds each
  to the user who created it;
- its login runs the password check inside the event loop and never forgets a session: the
  check runs in a worker thread (`async_authenticator`), failures are throttled and logged
  (`LoginLimiter`), and sessions expire (`SessionTokens`).
"""

from webapp.security.middleware import (
    GuardConfig,
    WebGuard,
    _lax_cookie,
    find_guard,
    gradio_user_resolver,
    mounted_gradio_app,
)
from webapp.security.origins import escape_text, parse_origins, same_origin
from webapp.security.sessions import (
    GradioSessions,
    LoginLimiter,
    SessionTokens,
    async_authenticator,
)
from webapp.security.uploads import UploadLedger, file_paths, guard_file_inputs

__all__ = [
    "GradioSessions",
    "GuardConfig",
    "LoginLimiter",
    "SessionTokens",
    "UploadLedger",
    "WebGuard",
    "_lax_cookie",
    "async_authenticator",
    "escape_text",
    "file_paths",
    "find_guard",
    "gradio_user_resolver",
    "guard_file_inputs",
    "mounted_gradio_app",
    "parse_origins",
    "same_origin",
]
