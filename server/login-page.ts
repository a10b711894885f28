import { createHash } from 'node:crypto';

/** The only style of the pages, allowed by its hash: no inline script or style runs else. */
const STYLE = `
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:22rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.4rem;margin:0 0 1rem}
label{display:block;margin-top:1rem;font-weight:600}
input,textarea{box-sizing:border-box;width:100%;padding:.5rem;margin-top:.25rem;border:1px solid #99a;border-radius:4px;font:inherit}
textarea{font-family:ui-monospace,monospace;font-size:.8rem;height:8rem}
button{margin-top:1.5rem;width:100%;padding:.6rem;border:0;border-radius:4px;background:#2456c8;color:#fff;font:inherit;font-weight:600;cursor:pointer}
.error{padding:.75rem;border-radius:4px;background:#fde8e8;color:#8a1c1c}
`;

const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');

/**
 * Nothing loads but the one style; the form may post only to this origin;
 * no page may frame it (clickjacking of a login form).
 */
export const LOGIN_PAGE_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${STYLE_HASH}'`,
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

export const HTML_CONTENT_TYPE = 'text/html; charset=utf-8';

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)} · Togather admin</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

/**
 * The sign-in form, posting to the admin login (which answers a form post
 * with a page too). `error` says why the last try failed; it never tells
 * whether the username exists.
 */
export function loginPage(action: string, error?: string): string {
  const alert = error ? `<p class="error" role="alert">${escapeHtml(error)}</p>\n` : '';
  return page(
    'Sign in',
    `<h1>Sign in to Togather admin</h1>
${alert}<form method="post" action="${escapeHtml(action)}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required maxlength="200">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1000">
<button type="submit">Sign in</button>
</form>`,
  );
}

/** After a successful form sign-in: the admin token, to use as a Bearer token. */
export function signedInPage(token: string, expiresInSeconds: number): string {
  const minutes = Math.max(1, Math.round(expiresInSeconds / 60));
  return page(
    'Signed in',
    `<h1>Signed in</h1>
<p>Your admin token, valid for ${minutes} minutes. Send it with API writes as <code>Authorization: Bearer &lt;token&gt;</code>; it is shown only this once.</p>
<label for="token">Token</label>
<textarea id="token" readonly>${escapeHtml(token)}</textarea>`,
  );
}
