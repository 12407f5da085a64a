import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { esc, tds } from '../../webview/html';

describe('the webview HTML helpers', () => {
  it('escape every table cell: a status or id from a workspace file never becomes markup', () => {
    const hostile = '<img src=x onerror="alert(1)">';
    const html = tds([hostile, 'ok & done', 42]);
    assert.equal(html, '<td>&#60;img src=x onerror=&#34;alert(1)&#34;&#62;</td><td>ok &#38; done</td><td>42</td>');
    assert.ok(!html.includes('<img'));
    assert.equal(esc(`'"<>&`), '&#39;&#34;&#60;&#62;&#38;');
  });
});
