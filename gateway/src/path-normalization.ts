/**
 * The HCM's path normalization as Istio configures it on the gateway by default: `normalize_path: true`,
 * `merge_slashes` off, `path_with_escaped_slashes_action: KEEP_UNCHANGED` (istio/istio
 * `pilot/pkg/networking/core/listener_builder.go` @ 1.27.0 L333-339: mesh `pathNormalization` unset is DEFAULT,
 * which sets only NormalizePath; the same at 1.28.0-1.30.0 L339-353). Envoy runs it on `:path` before route
 * matching and before any filter (ConnectionManagerUtility::maybeNormalizePath → PathUtil::canonicalPath,
 * `source/common/http/path_utility.cc`): the part before `?` goes through Chromium's `url::CanonicalizePath`
 * (`url_canon_path.cc`, DoPartialPath) and the query is put back unchanged. A path it cannot canonicalize makes the
 * request a 400 local reply (`path_normalization_failed`).
 *
 * What CanonicalizePath does, and so what this does, character by character:
 * - `.` and `..` segments (also spelled `%2e`, any case) are resolved; `..` never climbs above the first `/`;
 * - `\` becomes `/`;
 * - `%XX` of an unreserved character (letters, digits, `-`, `.`, `_`, `~`) is decoded; other escapes are kept as
 *   written (hex case included), so `%2F` stays (KEEP_UNCHANGED); `%00` fails;
 * - a character Chromium escapes in paths (controls, space, `"`, `#`, `<`, `>`, `^`, `` ` ``, `{`, `|`, `}`, DEL
 *   and every byte from 0x80) becomes `%XX` in upper case; a NUL fails;
 * - `//` is left alone (no merge_slashes).
 * Not modelled: `strip_dotdot_segments_with_parameters` (newer Envoys' `..;x` handling behind a runtime guard).
 */

/** How Chromium's kPathCharLookup classes an ASCII character. */
const enum CharClass {
  Pass,
  Escape,
  Unescape,
  Invalid,
}

function classOf(code: number): CharClass {
  if (code === 0) return CharClass.Invalid;
  if (code < 0x20 || code >= 0x7f) return CharClass.Escape;
  const ch = String.fromCharCode(code);
  if (/[A-Za-z0-9\-._~]/.test(ch)) return CharClass.Unescape;
  if (' "#<>?^`{|}%\\'.includes(ch)) return CharClass.Escape;
  return CharClass.Pass;
}

function hex(code: number): string {
  return `%${code.toString(16).toUpperCase().padStart(2, '0')}`;
}

function isSlash(ch: string | undefined): boolean {
  return ch === '/' || ch === '\\';
}

/** Length of a dot at `i` (`.` is 1, `%2e`/`%2E` is 3), or 0 (Chromium's IsDot). */
function dotLength(s: string, i: number): number {
  if (s[i] === '.') return 1;
  if (s[i] === '%' && s[i + 1] === '2' && (s[i + 2] === 'e' || s[i + 2] === 'E')) return 3;
  return 0;
}

type Dot = { kind: 'file' } | { kind: 'current' | 'up'; consumed: number };

/** Chromium's ClassifyAfterDot: what the dot(s) starting a segment mean, and how much input they take. */
function classifyAfterDot(s: string, afterDot: number): Dot {
  if (afterDot === s.length) return { kind: 'current', consumed: 0 };
  if (isSlash(s[afterDot])) return { kind: 'current', consumed: 1 };
  const second = dotLength(s, afterDot);
  if (second > 0) {
    const after = afterDot + second;
    if (after === s.length) return { kind: 'up', consumed: second };
    if (isSlash(s[after])) return { kind: 'up', consumed: second + 1 };
  }
  return { kind: 'file' };
}

/** Chromium's BackUpToPreviousSlash: drops the last segment of `out` (which ends in `/`), never the first `/`. */
function backUp(out: string): string {
  if (out.length <= 1) return out;
  const i = out.lastIndexOf('/', out.length - 2);
  return out.slice(0, Math.max(i, 0) + 1);
}

/** url::CanonicalizePath on a path without its query; null when Chromium reports failure. */
export function canonicalizePathPart(path: string): string | null {
  if (path === '') return '/';
  let out = isSlash(path[0]) ? '' : '/';
  let ok = true;
  for (let i = 0; i < path.length; i++) {
    const ch = path[i];
    const dot = dotLength(path, i);
    if (dot > 0) {
      if (out.endsWith('/')) {
        const d = classifyAfterDot(path, i + dot);
        if (d.kind === 'file') {
          out += '.';
          i += dot - 1;
        } else {
          if (d.kind === 'up') out = backUp(out);
          i += dot + d.consumed - 1;
        }
      } else {
        out += '.';
        i += dot - 1;
      }
      continue;
    }
    const code = path.charCodeAt(i);
    if (ch === '\\') {
      out += '/';
    } else if (ch === '%') {
      const pair = path.slice(i + 1, i + 3);
      if (/^[0-9A-Fa-f]{2}$/.test(pair)) {
        const value = parseInt(pair, 16);
        const cls = classOf(value);
        if (cls === CharClass.Unescape) out += String.fromCharCode(value);
        else {
          out += `%${pair}`;
          if (cls === CharClass.Invalid) ok = false;
        }
        i += 2;
      } else {
        // An invalid escape passes through as a bare '%'.
        out += '%';
      }
    } else if (code > 0xff) {
      // Node hands the request line over as latin1, so this does not happen; escape the UTF-8 bytes to be safe.
      for (const b of Buffer.from(ch, 'utf8')) out += hex(b);
    } else {
      const cls = classOf(code);
      if (cls === CharClass.Invalid) {
        out += hex(code);
        ok = false;
      } else if (cls === CharClass.Escape) out += hex(code);
      else out += ch;
    }
  }
  return ok ? out : null;
}

/**
 * PathUtil::canonicalPath on an origin-form `:path`, the fragment stripped first: the path part canonicalized, the
 * query (from the first `?`) kept as it came; null for a path Envoy rejects with 400.
 */
export function normalizePath(raw: string): string | null {
  // A fragment never reaches routing: Istio's bootstrap turns `envoy.reloadable_features.http_reject_path_with_fragment`
  // off (pkg/bootstrap/config.go @ 1.27.0), and Envoy then strips `#…` from `:path` instead of rejecting it
  // (ConnectionManagerUtility, `http_strip_fragment_from_path_unsafe_if_disabled` left on).
  const hash = raw.indexOf('#');
  const target = hash < 0 ? raw : raw.slice(0, hash);
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q);
  const canonical = canonicalizePathPart(path);
  return canonical === null ? null : canonical + query;
}
