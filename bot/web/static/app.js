// The dashboard's client: sign in (one-time link or Telegram initData), then the task list, the
// terminals, one task and the cost meter, kept live over one WebSocket authorised by the session cookie.
(function () {
  "use strict";
  var csrf = "", me = null, tasks = [], ws = null, terms = {}, view = document.getElementById("view");

  function $(tag, attrs, kids) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { if (k === "text") el.textContent = attrs[k]; else el.setAttribute(k, attrs[k]); });
    (kids || []).forEach(function (k) { if (k) el.appendChild(typeof k === "string" ? document.createTextNode(k) : k); });
    return el;
  }
  function flash(text) { var f = document.getElementById("flash"); f.textContent = text; f.hidden = !text; }
  function money(x) { return x === null || x === undefined ? "" : "$" + Number(x).toFixed(2); }
  function api(method, path, body) {
    var headers = { "Content-Type": "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    return fetch(path, { method: method, headers: headers, credentials: "same-origin",
                         body: body === undefined ? undefined : JSON.stringify(body) });
  }

  async function signIn() {
    var hash = location.hash.slice(1), params = new URLSearchParams(hash);
    var tg = window.Telegram && window.Telegram.WebApp && window.Telegram.WebApp.initData;
    var initData = tg || params.get("tgWebAppData");
    if (location.pathname === "/login" && hash) {
      history.replaceState(null, "", "/");  // the token leaves the address bar (and history) at once
      await api("POST", "/api/login", { token: hash });
    } else if (initData) {
      history.replaceState(null, "", location.pathname);
      await api("POST", "/api/miniapp", { init_data: initData });
    }
    var r = await fetch("/api/me", { credentials: "same-origin" });
    if (!r.ok) { document.getElementById("signin").hidden = false; return false; }
    me = await r.json(); csrf = me.csrf;
    document.getElementById("who").textContent = me.name + " · " + me.role;
    document.getElementById("nav").hidden = false;
    return true;
  }

  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.onopen = function () { watch(); };
    ws.onmessage = function (m) {
      var msg = JSON.parse(m.data);
      if (msg.t === "tasks") { tasks = msg.tasks; onTasks(); }
      else if (msg.t === "out") { var t = terms[msg.task]; if (t) write(t, msg.d, msg.reset); }
    };
    ws.onclose = function () { setTimeout(connect, 2000); };
  }
  function watch() {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({ watch: Object.keys(terms) }));
  }
  function write(t, text, reset) {
    if (reset) { t.el.textContent = ""; t.ansi = new window.Ansi(); }
    var stick = t.el.scrollTop + t.el.clientHeight >= t.el.scrollHeight - 20;
    t.ansi.append(t.el, text);
    while (t.el.childNodes.length > 4000) t.el.removeChild(t.el.firstChild);
    if (stick) t.el.scrollTop = t.el.scrollHeight;
  }
  function term(taskId) {
    var el = $("pre", { "class": "term", "data-task": taskId });
    terms[taskId] = { el: el, ansi: new window.Ansi() };
    return el;
  }

  // -- pages ----------------------------------------------------------------------------------
  var page = "list";
  function route() {
    var p = location.pathname; terms = {}; view.textContent = "";
    document.querySelectorAll("[data-nav]").forEach(function (a) { a.classList.toggle("on", a.getAttribute("href") === p); });
    if (p === "/grid") { page = "grid"; renderGrid(); }
    else if (p === "/cost") { page = "cost"; renderCost(); }
    else if (p.indexOf("/task/") === 0) { page = "task"; renderTask(p.slice(6)); }
    else { page = "list"; renderList(); }
    watch();
  }
  function onTasks() {
    if (page === "list") renderList();
    else if (page === "grid") renderGrid();
    else if (page === "task") {  // read the task again only when its line in the list changed
      var row = JSON.stringify(tasks.filter(function (t) { return t.id === current; })[0] || null);
      if (row !== lastRow) { lastRow = row; refreshTask(); }
    }
  }
  var lastRow = "";
  function card(t) {
    var a = $("a", { "class": "card" + (t.parent ? " child" : ""), href: "/task/" + t.id, "data-nav": "", "data-id": t.id }, [
      $("div", { "class": "head" }, [$("strong", { text: t.id }), $("span", { "class": "state " + t.state, text: t.state.replace(/_/g, " ") }),
        $("span", { text: (t.project ? t.project + " · " : "") + t.agent }), $("span", { text: money(t.cost) }),
        $("span", { text: t.duration_s ? Math.round(t.duration_s) + " s" : "" })]),
      $("div", { "class": "text", text: t.text })]);
    if (t.asks) a.appendChild($("div", { "class": "text", text: "asks: " + t.asks.what }));
    return a;
  }
  function tree(list) {  // plans as trees: each child right after its parent
    var byParent = {}, ids = {}, out = [];
    list.forEach(function (t) { ids[t.id] = 1; (byParent[t.parent] = byParent[t.parent] || []).push(t); });
    function walk(t) { out.push(t); (byParent[t.id] || []).forEach(walk); }
    list.forEach(function (t) { if (!t.parent || !ids[t.parent]) walk(t); });
    return out;
  }
  function renderList() {
    view.textContent = "";
    view.appendChild($("div", { "class": "cards", id: "tasks" }, tree(tasks).map(card)));
    if (!tasks.length) view.appendChild($("p", { "class": "note", text: "No tasks yet." }));
  }
  function renderGrid() {
    var running = tasks.filter(function (t) { return t.state === "running"; }).map(function (t) { return t.id; });
    var shown = Object.keys(terms);
    if (shown.length === running.length && shown.every(function (id) { return running.indexOf(id) >= 0; }) && view.firstChild) return;
    terms = {}; view.textContent = "";
    var grid = $("div", { "class": "terms", id: "terms" });
    running.forEach(function (id) { grid.appendChild($("div", { "class": "termbox" }, [$("h3", { text: id }), term(id)])); });
    view.appendChild(grid);
    if (!running.length) view.appendChild($("p", { "class": "note", text: "Nothing is running." }));
    watch();
  }
  var current = null;
  async function renderTask(id) {
    current = id; view.textContent = "";
    view.appendChild($("div", { id: "task" }));
    view.appendChild(term(id));
    await refreshTask();
  }
  async function refreshTask() {
    var r = await fetch("/api/task/" + current, { credentials: "same-origin" });
    if (!r.ok) { flash(r.status === 404 ? "No such task." : "Cannot read the task."); return; }
    var t = await r.json(), box = document.getElementById("task");
    if (!box) return;
    box.textContent = "";
    box.appendChild(card(t));
    var buttons = $("div", { "class": "buttons" });
    t.buttons.forEach(function (b) { buttons.appendChild(button(b[0].toUpperCase() + b.slice(1), "/api/task/" + t.id + "/" + b, b)); });
    t.asks.forEach(function (a) {
      buttons.appendChild($("span", { text: a.ref + " " + a.what }));
      buttons.appendChild(button("Allow", "/api/permission/" + a.ref + "/allow", "allow"));
      buttons.appendChild(button("Allow for this task", "/api/permission/" + a.ref + "/task", "task"));
      buttons.appendChild(button("Deny", "/api/permission/" + a.ref + "/deny", "deny"));
    });
    box.appendChild(buttons);
    if (t.pr_url) box.appendChild($("p", {}, [$("a", { href: t.pr_url, text: t.pr_url })]));
    var sum = t.final_text || t.error;
    if (sum) box.appendChild($("pre", { "class": "block", id: "summary", text: sum }));
    box.appendChild($("h3", { text: "Events" }));
    box.appendChild($("pre", { "class": "block", id: "events", text: t.events.map(function (e) { return e.kind + " " + e.text; }).join("\n") }));
    if (t.branch) {
      var d = $("pre", { "class": "block", id: "diff", text: "…" }); box.appendChild($("h3", { text: "Diff" })); box.appendChild(d);
      fetch("/api/task/" + t.id + "/diff", { credentials: "same-origin" }).then(function (r) { return r.json(); })
        .then(function (x) { d.textContent = x.error || (x.stat + "\n\n" + x.patch); });
    }
    box.appendChild($("h3", { text: "Log" }));
    box.appendChild($("pre", { "class": "block", id: "log", text: t.log }));
  }
  function button(label, path, action) {
    var b = $("button", { "data-action": action, "class": /reject|cancel|deny/.test(action) ? "danger" : "", text: label });
    b.onclick = async function () {
      b.disabled = true;
      var r = await api("POST", path, {}), body = {};
      try { body = await r.json(); } catch (e) { body = {}; }
      flash(r.ok ? action + ": done" : (body.error || ("refused (" + r.status + ")")));
      b.disabled = false;
      if (page === "task") refreshTask();
    };
    return b;
  }
  async function renderCost() {
    var r = await fetch("/api/costs", { credentials: "same-origin" });
    if (!r.ok) return;
    var c = await r.json();
    var box = $("div", { id: "cost" });
    Object.keys(c.periods || {}).forEach(function (k) { box.appendChild($("p", { text: k.replace(/_/g, " ") + ": " + money(c.periods[k].cost_usd) + " · " + c.periods[k].tasks + " tasks" })); });
    (c.budgets || []).forEach(function (b) {
      var limit = b.limit_usd || b.budget_usd || 0, spent = b.spent_usd || 0;
      var bar = $("div", { "class": "bar" }, [$("i")]);
      bar.firstChild.style.width = limit ? Math.min(100, 100 * spent / limit) + "%" : "0";
      box.appendChild($("p", { text: (b.name || b.period || "budget") + ": " + money(spent) + (limit ? " of " + money(limit) : "") }));
      box.appendChild(bar);
    });
    var rows = Object.keys(c.by_agent || {}).map(function (a) { return $("tr", {}, [$("td", { text: a }), $("td", { text: money(c.by_agent[a]) })]); });
    box.appendChild($("table", {}, [$("tr", {}, [$("th", { text: "agent" }), $("th", { text: "cost" })])].concat(rows)));
    var days = (c.by_day || []).slice(-14), max = Math.max.apply(null, days.map(function (d) { return d.cost_usd || 0; }).concat([0.01]));
    days.forEach(function (d) {
      var bar = $("div", { "class": "bar" }, [$("i")]); bar.firstChild.style.width = (100 * (d.cost_usd || 0) / max) + "%";
      box.appendChild($("div", { text: (d.period || d.day || "") + " " + money(d.cost_usd) })); box.appendChild(bar);
    });
    view.appendChild(box);
  }

  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a[data-nav]");
    if (!a || a.origin !== location.origin) return;
    e.preventDefault(); history.pushState(null, "", a.getAttribute("href")); route();
  });
  window.addEventListener("popstate", route);
  signIn().then(function (ok) { if (ok) { route(); connect(); } });
})();
