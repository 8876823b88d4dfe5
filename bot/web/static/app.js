/* moodtune web chat — vanilla JS, no build step.
 *
 * Talks to the JSON API of bot/server.py (GET /api/session, POST /api/chat, POST /api/feedback,
 * GET /api/history, POST /api/forget-me). Every POST carries the X-CSRF-Token header from
 * /api/session. All DOM is built with createElement/textContent: server text is never parsed
 * as HTML, and only http(s) links are ever turned into anchors.
 */
(function () {
  "use strict";

  var MOODS = [
    { key: "분노", cls: "anger" },
    { key: "긴장", cls: "tension" },
    { key: "슬픔", cls: "sadness" },
    { key: "평화", cls: "peace" },
    { key: "기쁨", cls: "joy" },
    { key: "중립", cls: "neutral" }
  ];
  var WELCOME = "안녕하세요! moodtune이에요.\n오늘 기분이나 상황을 편하게 말해 주세요. " +
    "어울리는 노래 다섯 곡을 골라 드릴게요.\n예) \"시험 끝나서 신나는 노래 듣고 싶어\", \"비 오는 밤에 들을 잔잔한 노래\"";
  var GENERIC_ERROR = "앗, 잠시 문제가 생겼어요. 조금 뒤에 다시 시도해 주세요.";
  var NETWORK_ERROR = "서버에 연결하지 못했어요. 인터넷 연결을 확인하고 다시 시도해 주세요.";

  var csrf = null;
  var sending = false;
  var lastOpener = null;

  var $ = function (id) { return document.getElementById(id); };
  var thread, form, input, sendBtn, historyDialog, forgetDialog;

  // ---- DOM helpers ---------------------------------------------------------------------
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function safeLink(url) {
    if (typeof url !== "string" || !url) { return null; }
    try {
      var u = new URL(url, window.location.href);
      return (u.protocol === "https:" || u.protocol === "http:") ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function reducedMotion() {
    return window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  // Scroll the thread itself (never the page): the newest question and the start of its
  // answer come into view, like a messenger.
  function scrollToNewest(node, alignTop) {
    var behavior = reducedMotion() ? "auto" : "smooth";
    var top = thread.scrollHeight;
    if (alignTop && node) {
      var anchor = node;
      var prev = node.previousElementSibling;
      if (prev && prev.classList.contains("msg-row-user") &&
          node.offsetTop + Math.min(node.offsetHeight, 240) - prev.offsetTop < thread.clientHeight) {
        anchor = prev;
      }
      top = Math.max(0, anchor.offsetTop - 12);
    }
    if (typeof thread.scrollTo === "function") {
      thread.scrollTo({ top: top, behavior: behavior });
    } else {
      thread.scrollTop = top;
    }
  }

  // ---- API ---------------------------------------------------------------------------
  function ApiError(status, message, retryAfter) {
    this.status = status;
    this.message = message;
    this.retryAfter = retryAfter;
  }

  function readJson(resp) {
    return resp.text().then(function (body) {
      var data = null;
      if (body) {
        try { data = JSON.parse(body); } catch (e) { data = null; }
      }
      if (!resp.ok) {
        var msg = data && typeof data.error === "string" && data.error ? data.error : null;
        var retry = data && data.retry_after !== undefined ? Number(data.retry_after) : null;
        if (retry === null || isNaN(retry)) {
          var header = Number(resp.headers.get("Retry-After"));
          retry = isNaN(header) || !header ? null : header;
        }
        throw new ApiError(resp.status, msg, retry);
      }
      return data || {};
    });
  }

  function fetchSession() {
    return fetch("/api/session", { credentials: "same-origin", cache: "no-store" })
      .then(readJson)
      .then(function (data) {
        csrf = data.csrf || null;
        var max = Number(data.max_chars);
        if (input && max > 0) { input.maxLength = max; }
        return csrf;
      });
  }

  function ensureSession() {
    return csrf ? Promise.resolve(csrf) : fetchSession();
  }

  function apiGet(path) {
    return fetch(path, { credentials: "same-origin", cache: "no-store",
                         headers: { "Accept": "application/json" } }).then(readJson);
  }

  function apiPost(path, body, retried) {
    return ensureSession().then(function (token) {
      return fetch(path, {
        method: "POST",
        credentials: "same-origin",
        cache: "no-store",
        headers: { "Content-Type": "application/json", "Accept": "application/json",
                   "X-CSRF-Token": token || "" },
        body: JSON.stringify(body)
      });
    }).then(readJson).catch(function (err) {
      // An expired session or a stale token: fetch a fresh one and try once more.
      if (!retried && err instanceof ApiError && (err.status === 403 || err.status === 401)) {
        csrf = null;
        return apiPost(path, body, true);
      }
      throw err;
    });
  }

  function errorText(err) {
    if (err instanceof ApiError) {
      if (err.status === 429) {
        var wait = err.retryAfter ? " (" + Math.ceil(err.retryAfter) + "초 뒤)" : "";
        return (err.message || "요청이 너무 많아요. 잠시 후 다시 시도해 주세요.") + wait;
      }
      if (err.message) { return err.message; }
      return GENERIC_ERROR;
    }
    return NETWORK_ERROR;
  }

  // ---- thread ------------------------------------------------------------------------
  function addUser(text) {
    var wrap = el("div", "msg-row msg-row-user");
    var bubble = el("p", "msg msg-user");
    bubble.appendChild(el("span", "visually-hidden", "나: "));
    bubble.appendChild(el("span", "msg-text", text));
    wrap.appendChild(bubble);
    thread.appendChild(wrap);
    scrollToNewest(wrap, false);
    return wrap;
  }

  function botRow(kind) {
    var wrap = el("div", "msg-row msg-row-bot");
    wrap.setAttribute("data-kind", kind || "message");
    var avatar = el("span", "avatar", "♪");
    avatar.setAttribute("aria-hidden", "true");
    wrap.appendChild(avatar);
    var body = el("div", "msg-body");
    wrap.appendChild(body);
    return { row: wrap, body: body };
  }

  function addBot(text, kind) {
    var r = botRow(kind);
    var bubble = el("p", "msg msg-bot" + (kind === "error" || kind === "busy" ? " msg-warn" : ""));
    bubble.appendChild(el("span", "visually-hidden", "moodtune: "));
    bubble.appendChild(el("span", "msg-text", text || ""));
    r.body.appendChild(bubble);
    thread.appendChild(r.row);
    scrollToNewest(r.row, true);
    return r;
  }

  function addTyping() {
    var r = botRow("typing");
    r.row.classList.add("typing-row");
    var bubble = el("p", "msg msg-bot msg-typing");
    bubble.appendChild(el("span", "visually-hidden", "추천을 고르는 중이에요"));
    for (var i = 0; i < 3; i++) {
      var dot = el("span", "dot");
      dot.setAttribute("aria-hidden", "true");
      bubble.appendChild(dot);
    }
    r.body.appendChild(bubble);
    thread.appendChild(r.row);
    scrollToNewest(r.row, false);
    return r.row;
  }

  function moodBars(emotion) {
    var box = el("section", "mood");
    var title = el("h3", "mood-title", "읽은 기분");
    var titleId = "mood-" + Math.random().toString(36).slice(2, 9);
    title.id = titleId;
    box.setAttribute("aria-labelledby", titleId);
    box.appendChild(title);
    var list = el("ul", "mood-bars");
    var top = null;
    MOODS.forEach(function (m) {
      var p = Number(emotion[m.key]);
      if (isNaN(p) || p < 0) { p = 0; }
      if (p > 1) { p = 1; }
      if (top === null || p > top.p) { top = { key: m.key, p: p }; }
      var pct = Math.round(p * 100);
      var li = el("li", "mood-bar mood-" + m.cls);
      li.appendChild(el("span", "mood-label", m.key));
      var track = el("span", "bar-track");
      track.setAttribute("aria-hidden", "true");
      var fill = el("span", "bar-fill");
      fill.style.width = pct + "%";   // CSSOM, allowed under style-src 'self'
      track.appendChild(fill);
      li.appendChild(track);
      li.appendChild(el("span", "mood-pct", pct + "%"));
      list.appendChild(li);
    });
    if (top) {
      list.querySelectorAll(".mood-bar").forEach(function (li) {
        if (li.querySelector(".mood-label").textContent === top.key) { li.classList.add("is-top"); }
      });
    }
    box.appendChild(list);
    return box;
  }

  function facetTags(facets) {
    if (!facets || typeof facets !== "object") { return null; }
    var tags = [];
    ["situations", "themes"].forEach(function (k) {
      if (Array.isArray(facets[k])) {
        facets[k].forEach(function (t) { if (typeof t === "string" && t) { tags.push(t); } });
      }
    });
    if (!tags.length) { return null; }
    var ul = el("ul", "tags");
    ul.setAttribute("aria-label", "어울리는 상황과 주제");
    tags.slice(0, 4).forEach(function (t) { ul.appendChild(el("li", "tag", t)); });
    return ul;
  }

  function trackCard(track, recId, index) {
    var pos = Number(track.position) || index + 1;
    var li = el("li", "card");
    li.setAttribute("data-position", String(pos));

    var head = el("div", "card-head");
    var num = el("span", "card-num", String(pos));
    num.setAttribute("aria-hidden", "true");
    head.appendChild(num);
    var titles = el("div", "card-titles");
    var h = el("h4", "card-title");
    h.appendChild(el("span", "visually-hidden", pos + "번 곡: "));
    h.appendChild(el("span", "card-title-text", track.title || "제목 없음"));
    titles.appendChild(h);
    var meta = el("p", "card-meta");
    meta.appendChild(el("span", "card-artist", track.artist || ""));
    if (track.genre) {
      meta.appendChild(el("span", "card-sep", " · ")).setAttribute("aria-hidden", "true");
      meta.appendChild(el("span", "card-genre", track.genre));
    }
    titles.appendChild(meta);
    head.appendChild(titles);
    li.appendChild(head);

    if (track.reason) { li.appendChild(el("p", "card-reason", track.reason)); }
    var tags = facetTags(track.facets);
    if (tags) { li.appendChild(tags); }

    var actions = el("div", "card-actions");
    var href = safeLink(track.link);
    if (href) {
      var a = el("a", "card-link", "듣기");
      a.href = href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.setAttribute("aria-label", (track.title || pos + "번 곡") + " 듣기 (새 탭에서 열림)");
      var ext = el("span", "ext", " ↗");
      ext.setAttribute("aria-hidden", "true");
      a.appendChild(ext);
      actions.appendChild(a);
    }
    var fb = el("div", "feedback");
    fb.setAttribute("role", "group");
    fb.setAttribute("aria-label", pos + "번 곡 평가");
    var like = feedbackButton("like", "👍", pos + "번 곡 좋아요");
    var dislike = feedbackButton("dislike", "👎", pos + "번 곡 싫어요");
    fb.appendChild(like);
    fb.appendChild(dislike);
    actions.appendChild(fb);
    li.appendChild(actions);
    var status = el("p", "card-status");
    status.setAttribute("role", "status");
    li.appendChild(status);

    // Never `disabled` while waiting: a disabled button drops the keyboard focus.
    var busy = false;
    function press(btn, other, signal) {
      if (busy || btn.getAttribute("aria-pressed") === "true") { return; }
      if (!recId) { status.textContent = "이 추천에는 평가를 남길 수 없어요."; return; }
      busy = true;
      fb.setAttribute("aria-busy", "true");
      apiPost("/api/feedback", { rec_id: recId, position: pos, signal: signal })
        .then(function (data) {
          btn.setAttribute("aria-pressed", "true");
          other.setAttribute("aria-pressed", "false");
          li.classList.toggle("is-liked", signal === "like");
          li.classList.toggle("is-disliked", signal === "dislike");
          status.textContent = (data && data.text) ||
            (signal === "like" ? "좋아요를 남겼어요." : "싫어요를 남겼어요.");
        })
        .catch(function (err) { status.textContent = errorText(err); })
        .then(function () { busy = false; fb.removeAttribute("aria-busy"); });
    }
    like.addEventListener("click", function () { press(like, dislike, "like"); });
    dislike.addEventListener("click", function () { press(dislike, like, "dislike"); });
    return li;
  }

  function feedbackButton(signal, emoji, label) {
    var b = el("button", "fb-btn fb-" + signal, emoji);
    b.type = "button";
    b.setAttribute("aria-pressed", "false");
    b.setAttribute("aria-label", label);
    b.title = label;
    return b;
  }

  function addAnswer(data) {
    var kind = typeof data.kind === "string" ? data.kind : "smalltalk";
    var text = typeof data.text === "string" ? data.text : "";
    var tracks = Array.isArray(data.tracks) ? data.tracks : [];
    if (kind !== "recommend" || !tracks.length) {
      var r = addBot(text || GENERIC_ERROR, kind);
      if (kind === "privacy") { openForget(null); }
      return r;
    }
    var row = botRow("recommend");
    var answer = el("article", "answer");
    if (typeof data.rec_id === "string") { answer.setAttribute("data-rec-id", data.rec_id); }
    var headId = "ans-" + Math.random().toString(36).slice(2, 9);
    var intro = el("p", "msg msg-bot");
    intro.id = headId;
    intro.appendChild(el("span", "visually-hidden", "moodtune: "));
    intro.appendChild(el("span", "msg-text", text));
    answer.setAttribute("aria-labelledby", headId);
    answer.appendChild(intro);
    if (data.emotion && typeof data.emotion === "object") {
      answer.appendChild(moodBars(data.emotion));
    }
    var h = el("h3", "visually-hidden", "추천 곡 " + tracks.length + "개");
    answer.appendChild(h);
    var list = el("ol", "cards");
    tracks.forEach(function (t, i) {
      if (t && typeof t === "object") { list.appendChild(trackCard(t, data.rec_id, i)); }
    });
    answer.appendChild(list);
    row.body.appendChild(answer);
    thread.appendChild(row.row);
    document.querySelectorAll(".chip-refine").forEach(function (c) { c.disabled = false; });
    scrollToNewest(row.row, true);
    return row;
  }

  function send(text, label) {
    text = (text || "").trim();
    if (!text || sending) { return; }
    sending = true;
    sendBtn.setAttribute("aria-disabled", "true");  // not `disabled`: that drops focus
    thread.setAttribute("aria-busy", "true");
    addUser(label || text);
    var typing = addTyping();
    apiPost("/api/chat", { text: text })
      .then(function (data) { typing.remove(); thread.removeAttribute("aria-busy"); addAnswer(data); })
      .catch(function (err) {
        typing.remove();
        thread.removeAttribute("aria-busy");
        addBot(errorText(err), "error");
      })
      .then(function () {
        sending = false;
        sendBtn.removeAttribute("aria-disabled");
      });
  }

  function welcome() {
    addBot(WELCOME, "welcome");
  }

  // ---- dialogs -----------------------------------------------------------------------
  function openDialog(dialog, opener) {
    lastOpener = opener || document.activeElement;
    if (typeof dialog.showModal === "function") {
      if (!dialog.open) { dialog.showModal(); }
    } else {
      dialog.setAttribute("open", "");
    }
  }

  function closeDialog(dialog) {
    if (typeof dialog.close === "function") { dialog.close(); } else { dialog.removeAttribute("open"); }
  }

  function restoreFocus() {
    var target = lastOpener && document.body.contains(lastOpener) ? lastOpener : input;
    lastOpener = null;
    if (target && target.focus) { target.focus(); }
  }

  function formatDate(value) {
    var d = null;
    if (typeof value === "number") {
      d = new Date(value < 1e12 ? value * 1000 : value);
    } else if (typeof value === "string" && value) {
      var n = Number(value);
      d = isNaN(n) ? new Date(value) : new Date(n < 1e12 ? n * 1000 : n);
    }
    if (!d || isNaN(d.getTime())) { return ""; }
    try {
      return d.toLocaleString("ko-KR", { month: "long", day: "numeric", hour: "2-digit", minute: "2-digit" });
    } catch (e) {
      return d.toISOString();
    }
  }

  function openHistory(opener) {
    var status = $("history-status");
    var list = $("history-list");
    list.textContent = "";
    status.textContent = "기록을 불러오는 중이에요…";
    openDialog(historyDialog, opener);
    apiGet("/api/history").then(function (data) {
      var items = data && Array.isArray(data.items) ? data.items : [];
      list.textContent = "";
      if (!items.length) {
        status.textContent = "아직 추천 기록이 없어요.";
        return;
      }
      status.textContent = "추천 " + items.length + "번의 기록이에요.";
      items.forEach(function (item) {
        var li = el("li", "history-item");
        var head = el("p", "history-head");
        var when = formatDate(item.created_at);
        if (when) { head.appendChild(el("span", "history-when", when)); }
        if (item.mood) { head.appendChild(el("span", "history-mood", String(item.mood))); }
        li.appendChild(head);
        var tl = el("ol", "history-tracks");
        (Array.isArray(item.tracks) ? item.tracks : []).forEach(function (t) {
          if (!t) { return; }
          var row = el("li");
          row.appendChild(el("span", "history-title", t.title || ""));
          if (t.artist) { row.appendChild(el("span", "history-artist", " — " + t.artist)); }
          tl.appendChild(row);
        });
        li.appendChild(tl);
        list.appendChild(li);
      });
    }).catch(function (err) {
      status.textContent = errorText(err);
    });
  }

  function openForget(opener) {
    $("forget-status").textContent = "";
    $("forget-confirm").removeAttribute("aria-disabled");
    openDialog(forgetDialog, opener);
    var cancel = forgetDialog.querySelector("[data-close]");
    if (cancel) { cancel.focus(); }
  }

  function describeDeleted(deleted) {
    var total = 0;
    if (deleted && typeof deleted === "object") {
      Object.keys(deleted).forEach(function (k) {
        var n = Number(deleted[k]);
        if (!isNaN(n)) { total += n; }
      });
    }
    return total ? "내 정보를 모두 삭제했어요 (" + total + "건). 새로 시작해요."
                 : "내 정보를 모두 삭제했어요. 새로 시작해요.";
  }

  function confirmForget() {
    var btn = $("forget-confirm");
    var status = $("forget-status");
    if (btn.getAttribute("aria-disabled") === "true") { return; }
    btn.setAttribute("aria-disabled", "true");
    status.textContent = "삭제하는 중이에요…";
    apiPost("/api/forget-me", { confirm: true }).then(function (data) {
      // The server starts a new anonymous session: use its fresh CSRF token (or fetch one).
      csrf = data && typeof data.csrf === "string" ? data.csrf : null;
      closeDialog(forgetDialog);
      thread.textContent = "";
      document.querySelectorAll(".chip-refine").forEach(function (c) { c.disabled = true; });
      addBot(describeDeleted(data && data.deleted), "forgotten");
      input.focus();
    }).catch(function (err) {
      btn.removeAttribute("aria-disabled");
      status.textContent = errorText(err);
    });
  }

  // ---- wiring ------------------------------------------------------------------------
  function init() {
    thread = $("thread");
    form = $("composer");
    input = $("message");
    sendBtn = $("send");
    historyDialog = $("history-dialog");
    forgetDialog = $("forget-dialog");

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var text = input.value;
      if (!text.trim() || sending) { return; }
      input.value = "";
      send(text);
      input.focus();
    });

    document.querySelectorAll(".chip").forEach(function (chip) {
      chip.addEventListener("click", function () {
        send(chip.getAttribute("data-send"), chip.getAttribute("data-label"));
      });
    });

    var skip = document.querySelector(".skip-link");
    if (skip) {
      skip.addEventListener("click", function (ev) { ev.preventDefault(); input.focus(); });
    }

    $("history-open").addEventListener("click", function (ev) { openHistory(ev.currentTarget); });
    $("forget-open").addEventListener("click", function (ev) { openForget(ev.currentTarget); });
    $("forget-confirm").addEventListener("click", confirmForget);

    [historyDialog, forgetDialog].forEach(function (dialog) {
      dialog.querySelectorAll("[data-close]").forEach(function (b) {
        b.addEventListener("click", function () { closeDialog(dialog); });
      });
      dialog.addEventListener("close", restoreFocus);
      // A click on the backdrop (outside the dialog box) closes it.
      dialog.addEventListener("click", function (ev) {
        if (ev.target !== dialog) { return; }
        var r = dialog.getBoundingClientRect();
        var inside = ev.clientX >= r.left && ev.clientX <= r.right &&
                     ev.clientY >= r.top && ev.clientY <= r.bottom;
        if (!inside) { closeDialog(dialog); }
      });
    });

    welcome();
    fetchSession().catch(function () { /* retried on the first POST */ });
    // Ready to type at once with a keyboard; on a touch screen, no keyboard popping up unasked.
    if (!(window.matchMedia && window.matchMedia("(pointer: coarse)").matches)) { input.focus(); }
    document.documentElement.setAttribute("data-ready", "true");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
