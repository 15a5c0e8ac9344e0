// page.js: what every plugin page served with sdk.ServePage shares. The
// page needs an element with id "result" for messages and may have an
// input with id "secret" for the API password or token.
const $ = id => document.getElementById(id);
const fmt = n => n >= 1<<30 ? (n/(1<<30)).toFixed(2)+' GiB' : n >= 1<<20 ? (n/(1<<20)).toFixed(1)+' MiB' : (n/1024).toFixed(1)+' KiB';
function cell(tr, text, cls) { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
function button(text, cls) { const b = document.createElement('button'); b.textContent = text; b.className = cls; return b; }
// Changes need the node's API password or token; the page keeps it for
// this tab only.
const secret = $('secret');
if (secret) secret.value = sessionStorage.getItem('vecino-secret') || '';
const auth = () => { sessionStorage.setItem('vecino-secret', secret.value); return 'Bearer ' + secret.value; };
function say(text, err) { $('result').textContent = text; $('result').className = err ? 'err' : ''; }
// failed says why a request was refused, from its status and JSON body.
function failed(status, body) {
  if (status === 401) return 'The node wants its API password or token for that.';
  try { return JSON.parse(body).error || ('HTTP ' + status); } catch (e) { return 'HTTP ' + status; }
}
// keyed keeps one element in parent for each of items, in their order,
// named by its key in the data attribute attr (data-ATTR): made by make
// the first time its key is seen, brought up to date by fill
// on every call, removed when its item is gone. Elements that stay keep
// their identity between refreshes, so a button the user is pressing is
// not swapped for a copy under the pointer. Anything else in parent (an
// empty-table hint) is removed.
function keyed(parent, items, attr, key, make, fill) {
  const old = new Map();
  for (const el of [...parent.children]) {
    if (el.dataset[attr] !== undefined) old.set(el.dataset[attr], el); else el.remove();
  }
  let prev = null;
  for (const it of items) {
    const k = String(key(it));
    let el = old.get(k);
    if (el) old.delete(k); else { el = make(it); el.dataset[attr] = k; }
    fill(el, it);
    const at = prev ? prev.nextSibling : parent.firstChild;
    if (at !== el) parent.insertBefore(el, at);
    prev = el;
  }
  for (const el of old.values()) el.remove();
}
// setText changes an element's or text node's text only if it differs.
function setText(node, text) {
  if (node.nodeType === Node.TEXT_NODE) { if (node.data !== text) node.data = text; }
  else if (node.textContent !== text) node.textContent = text;
}
// emptyRow shows text across a table body that has no rows: what a new
// user can do to fill it.
function emptyRow(rows, text) {
  if (rows.children.length) return;
  const tr = document.createElement('tr'); tr.className = 'empty';
  const td = cell(tr, text); td.colSpan = rows.closest('table').querySelectorAll('th').length;
  rows.appendChild(tr);
}
