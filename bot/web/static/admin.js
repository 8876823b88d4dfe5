// moodtune admin dashboard: reads /api/admin/*, draws cards and SVG charts, runs jobs.
// No libraries, no inline code (the page's CSP is script-src 'self'): every chart is SVG built
// here, coloured by CSS classes, and carries role="img" + an aria-label that says its numbers.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const LIVE_EVERY_MS = 5000;
  const OVERVIEW_EVERY_MS = 60000;
  const JOB_POLL_MS = 1000;
  const SIGNAL_KO = { love: "최고예요", like: "좋아요", play: "들어봄", skip: "건너뜀", dislike: "별로예요" };
  const KIND_KO = { reindex: "색인 다시 만들기", retrain: "CF 다시 학습" };
  let csrf = null;
  const polling = {};

  const $ = (id) => document.getElementById(id);
  const nf = new Intl.NumberFormat("ko-KR");
  const num = (v) => (v === null || v === undefined ? "–" : nf.format(v));
  const ms = (s) => (s === null || s === undefined ? "–" : s < 1 ? `≤ ${Math.round(s * 1000)} ms` : `≤ ${s} s`);
  const when = (t) => {
    if (!t) return "–";
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString("ko-KR");
  };
  const short = (s, n = 12) => (s ? String(s).slice(0, n) : "–");

  function el(tag, attrs = {}, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fillList(dl, rows) {
    dl.replaceChildren();
    for (const [label, value, cls] of rows) {
      dl.append(el("dt", {}, label));
      const dd = el("dd", cls ? { class: cls } : {}, value === null || value === undefined ? "–" : String(value));
      dl.append(dd);
    }
  }

  function showError(message) {
    const box = $("error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (options.method === "POST" && csrf) headers["X-CSRF-Token"] = csrf;
    const resp = await fetch(path, { credentials: "same-origin", ...options, headers });
    if (resp.status === 401) {
      window.location.reload(); // the session expired: the page answers with the login form
      throw new Error("로그인이 필요해요");
    }
    let body = null;
    try { body = await resp.json(); } catch (_) { body = null; }
    return { status: resp.status, body };
  }

  // ---- charts ---------------------------------------------------------------------------
  function horizontalBars(container, items, title, unit) {
    container.replaceChildren();
    const total = items.reduce((a, b) => a + b.value, 0);
    if (!items.length || total === 0) {
      container.append(el("p", { class: "empty" }, "데이터가 없어요."));
      return;
    }
    const rowH = 24, labelW = 110, valueW = 90, width = 560;
    const barW = width - labelW - valueW;
    const max = Math.max(...items.map((i) => i.value));
    const height = items.length * rowH + 8;
    const summary = `${title}: ` + items.map((i) => `${i.label} ${nf.format(i.value)}${unit}`).join(", ") +
      ` (합계 ${nf.format(total)}${unit})`;
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary });
    root.append(svg("title", {}, summary));
    items.forEach((item, i) => {
      const y = 4 + i * rowH;
      const w = max ? Math.max(1, (item.value / max) * barW) : 0;
      root.append(svg("text", { x: labelW - 8, y: y + rowH / 2 + 4, "text-anchor": "end" }, item.label));
      root.append(svg("rect", { x: labelW, y: y + 3, width: w, height: rowH - 8, rx: 3,
        class: `bar ${item.cls || ""}` }));
      const pct = total ? ` (${Math.round((item.value / total) * 100)}%)` : "";
      root.append(svg("text", { x: labelW + w + 6, y: y + rowH / 2 + 4, class: "value" },
        `${nf.format(item.value)}${pct}`));
    });
    container.append(root);
  }

  function stackedDays(container, data) {
    container.replaceChildren();
    const legend = $("feedback-legend");
    legend.replaceChildren();
    if (!data || data.error) {
      container.append(el("p", { class: "empty" }, data && data.error ? `피드백을 읽지 못했어요: ${data.error}` : "저장소가 없어요."));
      return;
    }
    const { days, signals, series, totals } = data;
    const width = 900, height = 240, left = 40, bottom = 28, top = 10;
    const plotW = width - left - 10, plotH = height - top - bottom;
    const perDay = days.map((_, d) => signals.reduce((a, s) => a + series[s][d], 0));
    const max = Math.max(1, ...perDay);
    const busiest = perDay.indexOf(Math.max(...perDay));
    const summary = `최근 ${days.length}일 피드백 ${nf.format(data.total)}건: ` +
      signals.map((s) => `${SIGNAL_KO[s] || s} ${nf.format(totals[s])}`).join(", ") +
      (data.total ? `. 가장 많은 날 ${days[busiest]} (${nf.format(perDay[busiest])}건)` : "");
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary });
    root.append(svg("title", {}, summary));
    for (const frac of [0, 0.5, 1]) {
      const y = top + plotH - frac * plotH;
      root.append(svg("line", { x1: left, x2: width - 10, y1: y, y2: y, class: "grid" }));
      root.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "axis" },
        nf.format(Math.round(frac * max))));
    }
    const slot = plotW / days.length;
    days.forEach((day, d) => {
      let y = top + plotH;
      for (const s of signals) {
        const v = series[s][d];
        if (!v) continue;
        const h = (v / max) * plotH;
        y -= h;
        const rect = svg("rect", { x: left + d * slot + 2, y, width: Math.max(1, slot - 4), height: h, class: `s-${s}` });
        rect.append(svg("title", {}, `${day} ${SIGNAL_KO[s] || s} ${v}`));
        root.append(rect);
      }
      if (d % 5 === 0 || d === days.length - 1) {
        root.append(svg("text", { x: left + d * slot + slot / 2, y: height - 8, "text-anchor": "middle", class: "axis" },
          day.slice(5)));
      }
    });
    container.append(root);
    for (const s of signals) legend.append(el("li", { class: `s-${s}` }, `${SIGNAL_KO[s] || s} ${nf.format(totals[s])}`));
    $("feedback-note").textContent = `(하루 단위, UTC${data.utc_offset}, 전체 ${nf.format(data.total)}건)`;
  }

  // ---- cards ----------------------------------------------------------------------------
  function renderHealth(h) {
    const status = $("health-status");
    status.textContent = h.status === "ok" ? "정상" : "주의";
    status.className = `big status-${h.status}`;
    const ul = $("health-problems");
    ul.replaceChildren(...(h.problems || []).map((p) => el("li", {}, p)));
    fillList($("health-list"), [
      ["곡 수", num(h.songs)], ["DB", h.store], ["CF", h.cf ? "사용 중" : "없음"], ["처리 중", num(h.pending)],
    ]);
  }

  function renderLive(live, engine) {
    fillList($("live-list"), [
      ["최근 1분 요청", `${num(live.requests_last_minute)}건 (${live.window_s}초 창)`],
      ["초당 요청", live.requests_per_s.toFixed(2)],
      ["p50 (최근)", ms(live.p50_s)], ["p99 (최근)", ms(live.p99_s)],
      ["p50 / p99 (전체)", `${ms(live.lifetime_p50_s)} / ${ms(live.lifetime_p99_s)}`],
      ["누적 요청", num(live.requests_total)],
      ["처리 중", `${num(engine.pending)} / ${num(engine.max_pending)}`],
      ["메모리 속 사용자", num(engine.users_in_memory)],
    ]);
    const tbody = $("series-table").querySelector("tbody");
    tbody.replaceChildren(...live.by_series.map((r) => {
      const tr = el("tr");
      for (const v of [r.channel, r.op, num(r.count), ms(r.p50_s), ms(r.p99_s)]) tr.append(el("td", {}, v));
      return tr;
    }));
  }

  function renderIndex(ix) {
    fillList($("index-list"), [
      ["곡 수", num(ix.songs)],
      ["색인 지문", short(ix.fingerprint)],
      ["모델 지문", short(ix.model_fingerprint), ix.model_matches ? "" : "mismatch"],
      ["카탈로그 sha256", short(ix.catalog_sha256)],
      ["카탈로그", ix.catalog],
      ["만든 때", when(ix.created_at)],
      ["빌드 시간", ix.build_seconds === null || ix.build_seconds === undefined ? "–" : `${ix.build_seconds}초`],
    ]);
  }

  function renderCf(cf) {
    if (!cf.loaded) {
      fillList($("cf-list"), [["상태", "모델 없음 (무드와 인기도로만 추천)"], ["경로", cf.path]]);
      return;
    }
    const rows = [
      ["상태", "사용 중"], ["모델", cf.model_id], ["사용자", num(cf.users)], ["곡", num(cf.songs)],
      ["학습 이벤트", num(cf.events)], ["학습한 때", when(cf.trained_at)],
    ];
    const metrics = cf.evaluation || cf.metrics || {};
    for (const key of ["sampled_train_auc", "auc", "ndcg", "recall", "fit_seconds", "peak_rss_mb"]) {
      if (metrics[key] !== undefined) rows.push([key, String(metrics[key])]);
    }
    fillList($("cf-list"), rows);
  }

  function renderStore(store, engine) {
    if (!store) {
      fillList($("store-list"), [["저장소", "없음"]]);
      return;
    }
    if (store.error) {
      fillList($("store-list"), [["저장소", store.error, "mismatch"]]);
      return;
    }
    const rows = Object.entries(store)
      .filter(([, v]) => typeof v === "number")
      .map(([k, v]) => [k, num(v)]);
    rows.push(["메모리 속 사용자", num(engine.users_in_memory)]);
    fillList($("store-list"), rows);
  }

  function renderOverview(o) {
    renderHealth(o.health);
    renderLive(o.live, o.engine);
    renderIndex(o.index);
    renderCf(o.cf);
    renderStore(o.store, o.engine);
    horizontalBars($("chart-moods"),
      o.catalogue.moods.map((m, i) => ({ label: `${m.emoji} ${m.mood}`, value: m.songs, cls: `m-${i}` })),
      "무드별 곡 수", "곡");
    horizontalBars($("chart-genres"),
      o.catalogue.genres.map((g) => ({ label: g.genre, value: g.songs })),
      "장르별 곡 수", "곡");
    stackedDays($("chart-feedback"), o.feedback);
    for (const kind of ["reindex", "retrain"]) {
      const job = o.jobs[kind];
      if (job && job.state === "running") pollJob(kind, job.id);
      else if (job && !polling[kind]) showJob(kind, job);
    }
    $("updated").textContent = `갱신: ${when(o.generated_at)}`;
  }

  async function loadOverview() {
    try {
      const { status, body } = await api("/api/admin/overview");
      if (status !== 200) throw new Error(body && body.message ? body.message : `HTTP ${status}`);
      renderOverview(body);
      showError("");
    } catch (err) {
      showError(`대시보드를 불러오지 못했어요: ${err.message}`);
    }
  }

  async function loadLive() {
    try {
      const { status, body } = await api("/api/admin/live");
      if (status !== 200) throw new Error(body && body.message ? body.message : `HTTP ${status}`);
      renderLive(body.live, body.engine);
      renderHealth(body.health);
      $("updated").textContent = `갱신: ${when(body.generated_at)}`;
      showError("");
    } catch (err) {
      showError(`실시간 값을 불러오지 못했어요: ${err.message}`);
    }
  }

  // ---- jobs -----------------------------------------------------------------------------
  function describeResult(kind, r) {
    if (!r) return "";
    if (kind === "reindex") return `${num(r.previous)}곡 → ${num(r.songs)}곡, ${r.seconds}초`;
    return `모델 ${r.model}: 사용자 ${num(r.users)}, 곡 ${num(r.songs)}, 이벤트 ${num(r.events)}, ${r.seconds}초`;
  }

  function showJob(kind, job) {
    const line = $(`job-${kind}`);
    const button = $(`btn-${kind}`);
    line.className = `job ${job.state}`;
    if (job.state === "running") {
      button.disabled = true;
      line.textContent = `${KIND_KO[kind]} 진행 중… ${Math.round(job.seconds)}초 (추천은 계속돼요)`;
    } else {
      button.disabled = false;
      line.textContent = job.state === "done"
        ? `✅ 완료 (${when(job.finished)}): ${describeResult(kind, job.result)}`
        : `❌ 실패 (${when(job.finished)}): ${job.error} — 이전 것으로 계속 추천해요.`;
    }
  }

  async function pollJob(kind, id) {
    if (polling[kind] === id) return;
    polling[kind] = id;
    while (polling[kind] === id) {
      let job;
      try {
        const { status, body } = await api(`/api/admin/jobs/${encodeURIComponent(id)}`);
        if (status !== 200) throw new Error(body && body.message ? body.message : `HTTP ${status}`);
        job = body;
      } catch (err) {
        $(`job-${kind}`).textContent = `작업 상태를 읽지 못했어요: ${err.message}`;
        $(`btn-${kind}`).disabled = false;
        delete polling[kind];
        return;
      }
      showJob(kind, job);
      if (job.state !== "running") {
        delete polling[kind];
        loadOverview();
        return;
      }
      await new Promise((r) => setTimeout(r, JOB_POLL_MS));
    }
  }

  async function startJob(kind) {
    const button = $(`btn-${kind}`);
    const line = $(`job-${kind}`);
    button.disabled = true;
    line.className = "job running";
    line.textContent = `${KIND_KO[kind]} 시작하는 중…`;
    try {
      const { status, body } = await api(`/api/admin/${kind}`, { method: "POST" });
      if (status === 202) pollJob(kind, body.job);
      else if (status === 409 && body && body.job) {
        line.textContent = body.message;
        pollJob(kind, body.job);
      } else throw new Error(body && body.message ? body.message : `HTTP ${status}`);
    } catch (err) {
      line.className = "job failed";
      line.textContent = `❌ 시작하지 못했어요: ${err.message}`;
      button.disabled = false;
    }
  }

  async function logout() {
    try { await api("/admin/logout", { method: "POST" }); } finally { window.location.assign("/admin"); }
  }

  async function init() {
    try {
      const { body } = await api("/api/admin/session");
      csrf = body ? body.csrf : null;
    } catch (err) {
      showError(`세션을 확인하지 못했어요: ${err.message}`);
    }
    $("btn-reindex").addEventListener("click", () => startJob("reindex"));
    $("btn-retrain").addEventListener("click", () => startJob("retrain"));
    $("logout").addEventListener("click", logout);
    await loadOverview();
    setInterval(loadLive, LIVE_EVERY_MS);
    setInterval(loadOverview, OVERVIEW_EVERY_MS);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
