// The hub's REST API as the dashboard uses it (cookie session; a 401 goes to the sign-in page).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    // not signed in, or the token expired or was revoked: sign in, then come back to /
    location.href = "/login";
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail ?? detail; } catch { /* not JSON */ }
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.status === 204 ? null : response.json();
}

export const get = (path) => request("GET", path);
const post = (path, body) => request("POST", path, body);

/** ``GET path`` with ``params`` (entries whose value is null or undefined are left out). */
export function getWith(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) query.set(name, String(value));
  }
  return get(`${path}?${query}`);
}

/** Acknowledge (``action`` "ack") or resolve an alert, with the operator's comment. */
export const changeAlert = (id, action, comment) =>
  post(`/api/v1/alerts/${encodeURIComponent(id)}/${action}`, { comment });

/** Revoke this session's token, then go to the sign-in page. */
export async function signOut() {
  try { await post("/api/v1/auth/logout"); } finally { location.href = "/login"; }
}
