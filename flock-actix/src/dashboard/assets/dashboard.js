// The flock dashboard: polls api/state and redraws. Names come from the
// network, so the DOM is built with textContent only (never innerHTML).
'use strict';

let refreshes = 0;

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    // CSSOM, not a style attribute: the page's CSP forbids inline styles.
    else if (key === 'style') Object.assign(node.style, value);
    else if (key === 'data') {
      for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) node.dataset[k] = v;
    }
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const percent = (x) => `${(100 * x).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`;
const number = (n) => Number(n).toLocaleString('en');
const clock = (ms) => new Date(ms).toLocaleTimeString('en-GB', { hour12: false });

function memberRow(m) {
  const bar = el('div', { class: 'bar' },
    el('div', { class: 'fill', style: { width: `${Math.min(100, 100 * m.share)}%` } }),
    m.weight_share > 0 ? el('div', { class: 'tick', style: { left: `${100 * m.weight_share}%` } }) : null);
  const shareText = el('div', { class: 'share-text',
    text: `${percent(m.share)} of the birds · weight entitles ${percent(m.weight_share)}` });
  return el('tr', { class: 'member', data: { name: m.name, status: m.status, birds: m.birds } },
    el('td', {}, el('strong', { text: m.name }), m.this_node ? el('span', { class: 'me', text: 'this node' }) : null),
    el('td', {}, el('span', { class: `pill ${m.status}`, text: m.status })),
    el('td', { class: 'num', text: String(m.weight) }),
    el('td', { class: 'num', text: number(m.birds) }),
    el('td', {}, bar, shareText),
    el('td', { class: 'addr', text: m.addr }));
}

function nodeCard(m) {
  const list = el('ul', { class: 'birds' });
  for (const name of m.names) list.append(el('li', { class: 'bird', text: name }));
  const more = m.birds - m.names.length;
  if (more > 0) list.append(el('li', { class: 'more', text: `+${number(more)} more` }));
  if (m.birds === 0) list.append(el('li', { class: 'more', text: 'no birds' }));
  return el('section', { class: 'node', data: { node: m.name, status: m.status, count: m.birds } },
    el('h3', {}, el('span', { text: m.name }), el('span', { class: 'count', text: `${number(m.birds)} birds` })),
    list);
}

function eventItem(e) {
  const names = e.birds.length
    ? el('div', { class: 'names', text: e.birds.join(', ') + (e.count > e.birds.length ? ', …' : '') })
    : null;
  return el('li', { class: 'event', data: { kind: e.kind, seq: e.seq, node: e.node, to: e.to } },
    el('time', { datetime: new Date(e.at_ms).toISOString(), text: clock(e.at_ms) }),
    el('span', { class: `kind ${e.kind}`, text: e.kind }),
    el('div', {}, el('span', { class: 'text', text: e.text }), names));
}

function render(s) {
  document.getElementById('node').textContent = s.node;
  document.title = `flock · ${s.node}`;
  document.body.dataset.node = s.node;
  const error = document.getElementById('error');
  error.hidden = !s.error;
  error.textContent = s.error || '';

  const up = s.members.filter((m) => m.status === 'up').length;
  document.getElementById('members-up').textContent = `${up} / ${s.members.length}`;
  document.getElementById('birds-total').textContent = number(s.birds);
  document.getElementById('running-here').textContent = number(s.running_here);
  document.getElementById('passivated-here').textContent = number(s.passivated_here);
  document.getElementById('unplaced').textContent = number(s.unplaced);

  document.getElementById('members').replaceChildren(...s.members.map(memberRow));
  document.getElementById('nodes').replaceChildren(...s.members.map(nodeCard));
  const kinds = s.kinds.map((k) => `${k.kind}: ${number(k.count)}`).join(' · ');
  document.getElementById('kinds').textContent =
    (kinds ? `By kind — ${kinds}.` : 'No birds yet.') +
    (s.tracking ? '' : ' Too many birds to follow one by one: moves are not listed.');

  const events = document.getElementById('events');
  const items = s.events.slice().reverse().map(eventItem);
  if (items.length === 0) items.push(el('li', { class: 'empty', text: 'No events yet.' }));
  events.replaceChildren(...items);
}

function setLive(ok, detail) {
  const live = document.getElementById('live');
  live.dataset.live = ok ? 'ok' : 'lost';
  live.textContent = ok ? `live · sampled ${clock(detail.sampled_at_ms)}` : `disconnected (${detail}) · retrying`;
}

async function refresh() {
  let period = 1000;
  try {
    const response = await fetch('api/state', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const state = await response.json();
    period = Math.max(250, state.interval_ms || period);
    render(state);
    refreshes += 1;
    document.body.dataset.refreshes = refreshes;
    setLive(state.sampled_at_ms > 0, state.sampled_at_ms > 0 ? state : 'no sample yet');
  } catch (e) {
    setLive(false, e.message || e);
  } finally {
    setTimeout(refresh, period);
  }
}

refresh();
