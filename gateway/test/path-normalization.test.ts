/**
 * The HCM's `normalize_path` as Istio's gateway has it by default (istio/istio
 * pilot/pkg/networking/core/listener_builder.go @ 1.27.0 L333-339): Envoy's PathUtil::canonicalPath
 * (source/common/http/path_utility.cc) over Chromium's url::CanonicalizePath (url_canon_path.cc DoPartialPath,
 * ClassifyAfterDot, BackUpToPreviousSlash, kPathCharLookup), with no merge_slashes and escaped slashes kept.
 */
import { canonicalizePathPart, normalizePath } from '../src/path-normalization';

describe('normalizePath (PathUtil::canonicalPath with Chromium CanonicalizePath)', () => {
  it.each([
    ['/v1/completions', '/v1/completions'],
    ['/v1/chat/../completions', '/v1/completions'],
    ['/v1/./completions', '/v1/completions'],
    ['/../../v1/x', '/v1/x'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a/.b/..c/...', '/a/.b/..c/...'],
    ['/a/%2e%2E/b', '/b'],
    ['/a/%2e/b', '/a/b'],
    ['/a%2Eb', '/a.b'],
    ['/a//b', '/a//b'],
    ['/a/%2F/b', '/a/%2F/b'],
    ['/a\\b\\..\\c', '/a/c'],
    ['/%41%7e%5f', '/A~_'],
    ['/a%2fb%3F', '/a%2fb%3F'],
    ['/a%zz', '/a%zz'],
    ['/a"<>`{|}^', '/a%22%3C%3E%60%7B%7C%7D%5E'],
    ['/\u00e9', '/%E9'],
  ])('%s → %s', (input, out) => {
    expect(canonicalizePathPart(input)).toBe(out);
  });

  it('keeps the query as it came and fails on NUL (Envoy answers 400)', () => {
    expect(normalizePath('/v1/../x?q=/../y&z=%41')).toBe('/x?q=/../y&z=%41');
    expect(normalizePath('/a/%00')).toBeNull();
    expect(canonicalizePathPart('')).toBe('/');
  });

  it('strips a fragment, as Envoy does with Istio\'s http_reject_path_with_fragment off (pkg/bootstrap/config.go @ 1.27.0)', () => {
    expect(normalizePath('/v1/models#x')).toBe('/v1/models');
    expect(normalizePath('/v1/../completions?a=1#frag?b')).toBe('/completions?a=1');
  });
});
