// page.js: what every plugin page served with sdk.ServePage shares. The
// page needs an element with id "result" for messages and may have an
// input with id "secret" for the API password or token.
const $ = id => document.getElementById(id);
const fmt = n => n >= 1<<30 ? (n/(1<<30)).toFixed(2)+' GiB' : n >= 1<<20 ? (n/(1<<20)).toFixed(1)+' MiB' : (n/1024).toFixed(1)+' KiB';
function cell(tr, text, cls) { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
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
// emptyRow shows text across a table body that has no rows: what a new
// user can do to fill it.
function emptyRow(rows, text) {
  if (rows.children.length) return;
  const tr = document.createElement('tr'); tr.className = 'empty';
  const td = cell(tr, text); td.colSpan = rows.closest('table').querySelectorAll('th').length;
  rows.appendChild(tr);
}
