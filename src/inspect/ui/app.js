// underpass inspector: the live list (Server-Sent Events from /api/events), a detail view of one
// exchange (GET /api/requests/http/{id}), Replay, Edit and replay, Clear. Captured content is
// only ever put into the page as text (textContent), never as HTML.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    items: new Map(),      // id -> summary
    order: [],             // ids, newest first
    fresh: new Set(),      // ids to flash once
    selected: null,
    detail: null,
    tab: 'request',
    views: { request: null, response: null },
    editing: false,
    pendingSelect: null,   // a replay's id, selected when its row arrives
  };

  // ---- small helpers -------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      e.append(c.nodeType ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function fmtDuration(ns) {
    if (ns == null) return '…';
    const us = ns / 1000;
    if (us < 1000) return `${Math.max(1, Math.round(us))} µs`;
    const ms = us / 1000;
    if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
    return `${(ms / 1000).toFixed(2)} s`;
  }

  function fmtSize(n) {
    if (n == null) return '';
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1048576).toFixed(1)} MiB`;
  }

  function fmtTime(iso) {
    const d = new Date(iso);
    const hms = d.toLocaleTimeString([], { hour12: false });
    return `${hms}.${String(d.getMilliseconds()).padStart(3, '0')}`;
  }

  function statusChip(code, st) {
    if (code == null) {
      const text = st === 'no_response' ? 'no reply' : 'pending';
      return el('span', { class: 'chip', text, title: st || '' });
    }
    return el('span', { class: `chip s${Math.floor(code / 100)}`, text: String(code) });
  }

  function methodBadge(m) {
    return el('span', { class: `badge method m-${m}`, text: m });
  }

  let toastTimer = null;
  function toast(msg, error) {
    const t = $('toast');
    t.textContent = msg;
    t.className = `toast show${error ? ' error' : ''}`;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.className = `toast${error ? ' error' : ''}`; }, error ? 6000 : 2400);
  }

  function b64bytes(b64) {
    const bin = atob(b64 || '');
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // raw = head CRLF CRLF body; header values never hold CR or LF, so the first blank line splits.
  function splitRaw(bytes) {
    for (let i = 0; i + 3 < bytes.length; i++) {
      if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
        return [bytes.subarray(0, i), bytes.subarray(i + 4)];
      }
    }
    return [bytes, new Uint8Array(0)];
  }

  function utf8(bytes) {
    try { return new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch { return null; }
  }

  function headerOf(headers, name) {
    for (const [k, v] of Object.entries(headers || {})) if (k.toLowerCase() === name) return v[0] || '';
    return '';
  }

  function tryJson(text) {
    if (text == null) return undefined;
    try { return JSON.parse(text); } catch { return undefined; }
  }

  // ---- the list ------------------------------------------------------------------------
  function matches(s) {
    const m = $('f-method').value;
    if (m && s.method !== m) return false;
    const st = $('f-status').value;
    if (st === 'pending') {
      if (s.status_code != null) return false;
    } else if (st && (s.status_code == null || String(Math.floor(s.status_code / 100)) !== st)) {
      return false;
    }
    const p = $('f-path').value.trim().toLowerCase();
    return !p || s.uri.toLowerCase().includes(p);
  }

  function rowOf(s) {
    const classes = ['row'];
    if (s.id === state.selected) classes.push('selected');
    if (state.fresh.has(s.id)) classes.push('fresh');
    return el('li', {
      class: classes.join(' '), 'data-id': s.id, tabindex: 0,
      onclick: () => select(s.id),
      onkeydown: (e) => { if (e.key === 'Enter') select(s.id); },
    },
    methodBadge(s.method),
    el('span', { class: 'path', title: s.uri, text: s.uri }),
    el('span', { class: 'status' }, statusChip(s.status_code, s.state)),
    el('div', { class: 'meta' },
      el('span', { text: fmtTime(s.start) }),
      el('span', { class: 'dur', text: fmtDuration(s.duration) }),
      s.response_size ? el('span', { text: fmtSize(s.response_size) }) : null,
      s.upgrade ? el('span', { class: 'tag', text: 'WebSocket' }) : null,
      s.replay_of ? el('span', { class: 'tag replay', text: '↻ replay' }) : null));
  }

  let listQueued = false;
  function queueList() {
    if (listQueued) return;
    listQueued = true;
    requestAnimationFrame(renderList);
  }

  function renderList() {
    listQueued = false;
    const frag = document.createDocumentFragment();
    let shown = 0;
    for (const id of state.order) {
      const s = state.items.get(id);
      if (!s || !matches(s)) continue;
      shown++;
      frag.append(rowOf(s));
    }
    $('rows').replaceChildren(frag);
    const total = state.order.length;
    $('empty').hidden = total > 0;
    $('count').textContent = total === 0 ? ''
      : shown === total ? `${total} request${total === 1 ? '' : 's'}`
      : `${shown} of ${total} requests`;
    state.fresh.clear();
  }

  function renderTunnels(tunnels) {
    $('tunnels').replaceChildren(...tunnels.map((t) => {
      const safe = /^https?:\/\//.test(t.public_url);
      return el('span', { class: 'tunnel', title: `${t.name}: ${t.public_url} → ${t.config.addr}` },
        safe ? el('a', { href: t.public_url, target: '_blank', rel: 'noopener noreferrer', text: t.public_url })
          : el('span', { text: t.name }),
        el('span', { class: 'arrow', text: '→' }),
        el('span', { text: t.config.addr }));
    }));
  }

  function setLive(st) {
    $('live').dataset.state = st;
    $('live-text').textContent = st === 'live' ? 'live' : st === 'down' ? 'disconnected' : 'reconnecting';
  }

  function connect() {
    const es = new EventSource('/api/events');
    es.addEventListener('open', () => setLive('live'));
    es.addEventListener('error', () => setLive(es.readyState === EventSource.CLOSED ? 'down' : 'connecting'));
    es.addEventListener('reset', (ev) => {
      const d = JSON.parse(ev.data);
      state.items.clear();
      state.order = [];
      for (const s of d.requests) { state.items.set(s.id, s); state.order.push(s.id); }
      renderTunnels(d.tunnels);
      queueList();
      if (state.selected && !state.items.has(state.selected)) showPlaceholder();
      else if (state.selected) queueDetail();
    });
    es.addEventListener('exchange', (ev) => {
      const s = JSON.parse(ev.data);
      if (!state.items.has(s.id)) { state.order.unshift(s.id); state.fresh.add(s.id); }
      state.items.set(s.id, s);
      queueList();
      if (s.id === state.pendingSelect) { state.pendingSelect = null; select(s.id); }
      else if (s.id === state.selected) queueDetail();
    });
    es.addEventListener('clear', () => {
      state.items.clear();
      state.order = [];
      queueList();
      showPlaceholder();
    });
  }

  // ---- the detail ----------------------------------------------------------------------
  function showPlaceholder(text) {
    state.selected = null;
    state.detail = null;
    state.editing = false;
    $('detail').replaceChildren(el('div', { class: 'placeholder', text: text || 'Select a request to see its headers and bodies.' }));
  }

  function select(id) {
    if (state.selected !== id) {
      state.views = { request: null, response: null };
      state.editing = false;
    }
    state.selected = id;
    queueList();
    loadDetail();
  }

  let detailSeq = 0;
  let detailTimer = null;
  function queueDetail() {
    if (state.editing) return;
    clearTimeout(detailTimer);
    detailTimer = setTimeout(loadDetail, 60);
  }

  async function loadDetail() {
    const id = state.selected;
    if (!id) return;
    const seq = ++detailSeq;
    let r;
    try { r = await fetch(`/api/requests/http/${encodeURIComponent(id)}`); } catch { return; }
    if (seq !== detailSeq || id !== state.selected) return;
    if (!r.ok) { showPlaceholder('This request is no longer kept.'); return; }
    state.detail = await r.json();
    renderDetail();
  }

  function metaItem(label, value) {
    return el('span', null, `${label} `, el('b', { text: value }));
  }

  function renderDetail() {
    const d = state.detail;
    if (!d) return;
    const summary = state.items.get(d.id);
    const upgrade = (summary && summary.upgrade) || d.upgrade != null;
    const running = d.state === 'waiting' || d.state === 'streaming';
    const head = el('div', { class: 'd-head' },
      el('div', { class: 'd-title' },
        el('div', { class: 'd-line' },
          methodBadge(d.request.method),
          el('span', { class: 'd-path', id: 'd-path', text: d.request.uri }),
          statusChip(d.response ? d.response.status_code : null, d.state)),
        el('div', { class: 'd-meta' },
          metaItem('at', new Date(d.start).toLocaleString()),
          metaItem('took', running ? 'running…' : fmtDuration(d.duration)),
          d.head_duration != null ? metaItem('first byte', fmtDuration(d.head_duration)) : null,
          metaItem('from', d.remote_addr || 'unknown'),
          metaItem('tunnel', d.tunnel_name),
          d.replay_of ? el('span', null, 'replay of ',
            el('a', { href: '#', onclick: (e) => { e.preventDefault(); select(d.replay_of); }, text: d.replay_of })) : null,
          d.upgrade ? metaItem('WebSocket', `${fmtSize(d.upgrade.bytes_to_app)} to app, ${fmtSize(d.upgrade.bytes_from_app)} from app`) : null)),
      el('div', { class: 'd-actions' },
        el('button', {
          class: 'btn', id: 'replay', type: 'button', disabled: upgrade,
          title: upgrade ? 'WebSocket upgrades cannot be replayed' : 'Send this request to the local service again',
          onclick: () => replay(d.id), text: 'Replay',
        }),
        el('button', {
          class: 'btn ghost', id: 'edit', type: 'button', disabled: upgrade,
          onclick: () => { state.editing = true; renderDetail(); }, text: 'Edit and replay',
        })));
    const tabs = el('div', { class: 'tabs', role: 'tablist' },
      ['request', 'response'].map((t) => el('button', {
        class: 'tab', role: 'tab', type: 'button', id: `tab-${t}`, 'aria-selected': String(state.tab === t),
        onclick: () => { state.tab = t; renderDetail(); },
        text: t === 'request' ? 'Request' : (d.response ? `Response · ${d.response.status_code}` : 'Response'),
      })));
    const cards = [];
    if (state.tab === 'request') {
      cards.push(headersCard(d.request.headers), bodyCard('request', d.request));
    } else if (d.response) {
      cards.push(headersCard(d.response.headers), bodyCard('response', d.response));
    } else {
      cards.push(el('div', { class: 'card' }, el('div', { class: 'none',
        text: d.state === 'no_response' ? 'No response: the visitor left before the app answered.' : 'Waiting for the response…' })));
    }
    const parts = [head, state.editing ? editCard(d) : null, tabs, ...cards];
    $('detail').replaceChildren(...parts.filter((p) => p != null));
    // A streaming body (SSE, a download) grows without events: look again each second.
    clearTimeout(state.liveTimer);
    if (running) state.liveTimer = setTimeout(() => { if (state.selected === d.id) queueDetail(); }, 1000);
  }

  function headersCard(headers) {
    const rows = [];
    for (const [k, vs] of Object.entries(headers || {})) {
      for (const v of vs) rows.push(el('tr', null, el('td', { text: k }), el('td', { text: v })));
    }
    return el('div', { class: 'card' }, el('h3', null, 'Headers', el('span', { class: 'size', text: `${rows.length}` })),
      rows.length ? el('table', { class: 'kv' }, el('tbody', null, rows)) : el('div', { class: 'none', text: 'No headers' }));
  }

  const VIEWS = [['text', 'Text'], ['json', 'JSON'], ['form', 'Form'], ['hex', 'Hex'], ['raw', 'Raw']];

  function autoView(ctype, body, text) {
    if (!body.length) return 'raw';
    if (text == null) return 'hex';
    const ct = ctype.toLowerCase();
    if (ct.includes('json') || (/^\s*[[{]/.test(text) && tryJson(text) !== undefined)) return 'json';
    if (ct.includes('application/x-www-form-urlencoded')) return 'form';
    return 'text';
  }

  function bodyCard(side, part) {
    const raw = b64bytes(part.raw);
    const [, body] = splitRaw(raw);
    const text = utf8(body);
    const info = part.body || { size: body.length, captured: body.length, truncated: false, state: 'complete' };
    const view = state.views[side] || autoView(headerOf(part.headers, 'content-type'), body, text);
    const sizeText = info.truncated ? `${fmtSize(info.captured)} of ${fmtSize(info.size)}` : fmtSize(info.size);
    const card = el('div', { class: 'card body-card', 'data-side': side },
      el('h3', null, 'Body', el('span', { class: 'size', text: sizeText }), el('span', { class: 'spacer' }),
        el('div', { class: 'views', role: 'group', 'aria-label': 'Body view' },
          VIEWS.map(([v, label]) => el('button', {
            type: 'button', 'data-view': v, 'aria-pressed': String(v === view),
            onclick: () => { state.views[side] = v; renderDetail(); }, text: label,
          })))));
    if (info.truncated) {
      card.append(el('div', { class: 'note', text: `Truncated: the first ${fmtSize(info.captured)} of ${fmtSize(info.size)} were kept (--inspect-body-cap).` }));
    }
    if (info.state === 'cut') card.append(el('div', { class: 'note', text: 'Cut short: the connection ended before the body did.' }));
    if (info.state === 'open') card.append(el('div', { class: 'note', text: 'Still streaming: this is what has passed so far.' }));
    card.append(...[renderView(view, raw, body, text)].flat());
    return card;
  }

  function renderView(view, raw, body, text) {
    if (view === 'raw') {
      return el('pre', { class: 'body raw', text: utf8(raw) ?? new TextDecoder().decode(raw) });
    }
    if (!body.length) return el('div', { class: 'none', text: 'No body' });
    if (view === 'json') {
      const v = tryJson(text);
      if (v === undefined) return [el('div', { class: 'note', text: 'Not valid JSON; shown as text.' }), el('pre', { class: 'body', text: text ?? '' })];
      return el('pre', { class: 'body json' }, highlight(JSON.stringify(v, null, 2)));
    }
    if (view === 'form') {
      if (text == null) return el('div', { class: 'none', text: 'Not form data (binary body).' });
      const rows = [];
      for (const [k, v] of new URLSearchParams(text)) rows.push(el('tr', null, el('td', { text: k }), el('td', { text: v })));
      return rows.length ? el('table', { class: 'kv form' }, el('tbody', null, rows)) : el('div', { class: 'none', text: 'No form fields' });
    }
    if (view === 'hex') return el('pre', { class: 'body hex' }, hexdump(body));
    return el('pre', { class: 'body text', text: text ?? new TextDecoder().decode(body) });
  }

  const TOKEN = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  // Colouring a huge document costs more than it helps: past this, plain text.
  const HIGHLIGHT_LIMIT = 256 * 1024;
  function highlight(pretty) {
    if (pretty.length > HIGHLIGHT_LIMIT) return [pretty];
    const out = [];
    let last = 0;
    for (const m of pretty.matchAll(TOKEN)) {
      if (m.index > last) out.push(pretty.slice(last, m.index));
      if (m[1]) {
        out.push(el('span', { class: m[2] ? 'tok-key' : 'tok-str', text: m[1] }));
        if (m[2]) out.push(m[2]);
      } else if (m[3]) out.push(el('span', { class: 'tok-lit', text: m[3] }));
      else out.push(el('span', { class: 'tok-num', text: m[4] }));
      last = m.index + m[0].length;
    }
    out.push(pretty.slice(last));
    return out;
  }

  const HEX_LIMIT = 64 * 1024;
  function hexdump(bytes) {
    const out = [];
    const n = Math.min(bytes.length, HEX_LIMIT);
    for (let off = 0; off < n; off += 16) {
      const row = bytes.subarray(off, Math.min(off + 16, n));
      let hex = '';
      let asc = '';
      for (let i = 0; i < 16; i++) {
        hex += i < row.length ? row[i].toString(16).padStart(2, '0') + ' ' : '   ';
        if (i === 7) hex += ' ';
        if (i < row.length) asc += row[i] >= 32 && row[i] < 127 ? String.fromCharCode(row[i]) : '.';
      }
      out.push(el('span', { class: 'off', text: off.toString(16).padStart(8, '0') }), `  ${hex} `, el('span', { class: 'asc', text: asc }), '\n');
    }
    if (bytes.length > n) out.push(`… ${fmtSize(bytes.length - n)} more\n`);
    return out;
  }

  // ---- actions -------------------------------------------------------------------------
  async function replay(id, edit) {
    const payload = { id };
    if (edit) payload.request = edit;
    let r;
    try {
      r = await fetch('/api/requests/http', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(payload),
      });
    } catch (e) {
      toast(`Replay failed: ${e.message}`, true);
      return false;
    }
    if (r.status === 204) {
      const fresh = r.headers.get('underpass-replay-id');
      toast('Replayed to the local service');
      if (fresh) {
        if (state.items.has(fresh)) select(fresh); else state.pendingSelect = fresh;
      }
      return true;
    }
    let msg = `Replay failed (${r.status})`;
    try { const j = await r.json(); if (j.msg) msg = j.msg; } catch { /* not JSON */ }
    toast(msg, true);
    return false;
  }

  function parseHeaders(text) {
    const out = {};
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const i = line.indexOf(':');
      if (i <= 0) return null;
      const name = line.slice(0, i).trim();
      (out[name] = out[name] || []).push(line.slice(i + 1).trim());
    }
    return out;
  }

  function editCard(d) {
    const raw = b64bytes(d.request.raw);
    const [, body] = splitRaw(raw);
    const text = utf8(body);
    const info = d.request.body || {};
    const lines = [];
    for (const [k, vs] of Object.entries(d.request.headers || {})) {
      if (k.toLowerCase() === 'content-length') continue; // set from the body
      for (const v of vs) lines.push(`${k}: ${v}`);
    }
    const method = el('input', { type: 'text', id: 'e-method', 'aria-label': 'Method', spellcheck: 'false' });
    method.value = d.request.method;
    const path = el('input', { type: 'text', id: 'e-path', 'aria-label': 'Path', spellcheck: 'false' });
    path.value = d.request.uri;
    const headers = el('textarea', { id: 'e-headers', 'aria-label': 'Headers', spellcheck: 'false' });
    headers.value = lines.join('\n');
    const bodyArea = el('textarea', { id: 'e-body', 'aria-label': 'Body', spellcheck: 'false' });
    if (text == null) {
      bodyArea.disabled = true;
      bodyArea.placeholder = `Binary body (${fmtSize(info.size)}): sent unchanged.`;
    } else {
      bodyArea.value = text;
    }
    const send = async () => {
      const h = parseHeaders(headers.value);
      if (h === null) { toast('Each header line must look like "Name: value"', true); return; }
      const edit = { method: method.value.trim(), uri: path.value.trim(), headers: h };
      if (text != null) edit.body = bodyArea.value;
      if (await replay(d.id, edit)) { state.editing = false; renderDetail(); }
    };
    const line = (label, input) => el('div', { class: 'line' }, el('label', { text: label }), input);
    return el('div', { class: 'card edit-card' }, el('h3', null, 'Edit and replay'),
      el('div', { class: 'edit' },
        line('Method', method), line('Path', path), line('Headers', headers), line('Body', bodyArea),
        info.truncated && text != null
          ? el('div', { class: 'note', text: `The captured body was truncated (${fmtSize(info.captured)} of ${fmtSize(info.size)}): exactly the text above is sent.` })
          : null,
        el('div', { class: 'buttons' },
          el('button', { class: 'btn ghost', type: 'button', onclick: () => { state.editing = false; renderDetail(); }, text: 'Cancel' }),
          el('button', { class: 'btn', type: 'button', id: 'e-send', onclick: send, text: 'Send' }))));
  }

  function move(step) {
    const rows = [...document.querySelectorAll('#rows .row')];
    if (!rows.length) return;
    const at = rows.findIndex((r) => r.dataset.id === state.selected);
    const next = rows[Math.min(rows.length - 1, Math.max(0, at < 0 ? 0 : at + step))];
    select(next.dataset.id);
    next.scrollIntoView({ block: 'nearest' });
  }

  // ---- wiring --------------------------------------------------------------------------
  for (const id of ['f-method', 'f-status']) $(id).addEventListener('change', queueList);
  $('f-path').addEventListener('input', queueList);
  $('clear').addEventListener('click', async () => {
    try {
      const r = await fetch('/api/requests/http', { method: 'DELETE' });
      if (r.status !== 204) toast(`Clear failed (${r.status})`, true);
    } catch (e) {
      toast(`Clear failed: ${e.message}`, true);
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.target.closest('input, textarea, select')) return;
    if (e.key === 'ArrowDown' || e.key === 'j') { e.preventDefault(); move(1); }
    if (e.key === 'ArrowUp' || e.key === 'k') { e.preventDefault(); move(-1); }
  });
  connect();
})();
