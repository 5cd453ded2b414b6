/* The reports (/reports) and the monthly print report (/reports/print), issue 14.
 *
 * Everything is drawn from the reports API (/api/v1/reports/*: sla, overdue, arrivals, outcomes,
 * ranking, trends, heatmap, grids, incidents) with Apache ECharts (web/static/vendor/echarts) and,
 * for the grid choropleth, Leaflet. Filters (period, organisation, channel, type) go to every call;
 * a chief's organisation is fixed to their station (the county row stays for comparison). Every
 * figure opens the incidents behind it (/api/v1/reports/incidents?measure=...) in a drawer: JQ code
 * and reported time in Beijing time (gisapp.time). User-written text goes through gisapp.esc.
 * The print mode draws the same tables and charts (SVG renderer, no animation) for an A4 page.
 * No CDN, no inline handlers (CSP). MIT-licensed as part of the project.
 */
(function () {
  'use strict';

  var root = document.getElementById('reports');
  var G = window.gisapp;
  var cfg = root && G.pageConfig('reports-config');
  if (!cfg) { return; }
  var lang = cfg.lang === 'en' ? 'en' : 'zh';
  var PRINT = cfg.mode === 'print';
  var API = cfg.api || '/api/v1/reports';
  var SPRITE = '/static/vendor/fontawesome/icons.svg';
  var COLORS = ['#1d4ed8', '#0891b2', '#c8a24a', '#16a34a', '#dc2626', '#7c3aed', '#ea580c', '#64748b'];

  var t = G.tf;
  var esc = G.esc;
  function $(sel) { return root.querySelector(sel); }
  function $$(sel) { return Array.prototype.slice.call(root.querySelectorAll(sel)); }
  function icon(name, cls) { return '<svg class="ic ' + (cls || '') + '" aria-hidden="true"><use href="' + SPRITE + '#fa-' + name + '"></use></svg>'; }
  function pct(v) { return v === null || v === undefined ? '—' : (Number(v) * 100).toFixed(1) + '%'; }
  function mins(s) { return s === null || s === undefined ? '—' : (Number(s) / 60).toFixed(1); }
  function num(v) { return v === null || v === undefined ? '—' : Number(v).toLocaleString(lang === 'en' ? 'en-GB' : 'zh-CN'); }
  function label(row) { return lang === 'en' ? (row.label_en || row.name_en || row.label || row.name || row.key) : (row.label || row.name || row.key); }
  function orgName(row) { return lang === 'en' ? (row.name_en || row.name || row.organisation) : (row.name || row.organisation); }
  function span(s) {
    s = Math.max(0, Math.round(Number(s) || 0));
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return (d ? d + t('rp.unit.d') : '') + (d || h ? h + t('rp.unit.h') : '') + m + t('rp.unit.m');
  }
  function typeName(code) {
    var ty = (cfg.types || []).filter(function (x) { return x.code === code; })[0];
    return ty ? ty.name : code;
  }

  // --- filters ------------------------------------------------------------------------------------
  var F = {pmode: 'month', month: cfg.month, from: '', to: '', organisation: cfg.own_organisation ? String(cfg.own_organisation) : '',
    channel: '', type: ''};
  if (PRINT && cfg.print_organisation) { F.organisation = String(cfg.print_organisation); }
  (function fromUrl() {  // the page's own query (a bookmark, a link from the home page)
    var u = new URLSearchParams(window.location.search);
    if (u.get('month')) { F.month = u.get('month'); }
    if (u.get('from') && u.get('to') && !PRINT) { F.pmode = 'range'; F.from = u.get('from'); F.to = u.get('to'); }
    if (!PRINT) {
      ['channel', 'type'].forEach(function (k) { if (u.get(k)) { F[k] = u.get(k); } });
      if (u.get('organisation') && !cfg.own_organisation) { F.organisation = u.get('organisation'); }
    }
  })();
  function period() {
    return F.pmode === 'range' && F.from && F.to ? {from: F.from, to: F.to} : {month: F.month};
  }
  function qs(extra, noFilters) {
    var p = noFilters ? {} : period();
    if (!noFilters) {
      ['organisation', 'channel', 'type'].forEach(function (k) { if (F[k]) { p[k] = F[k]; } });
    }
    Object.keys(extra || {}).forEach(function (k) {
      if (extra[k] === null || extra[k] === undefined || extra[k] === '') { delete p[k]; } else { p[k] = extra[k]; }
    });
    if (p.month && (p.from || p.to)) { delete p.month; }
    return Object.keys(p).map(function (k) { return encodeURIComponent(k) + '=' + encodeURIComponent(p[k]); }).join('&');
  }
  function rankMonth() { return F.pmode === 'range' && F.to ? F.to.slice(0, 7) : F.month; }

  function syncForm() {
    var form = $('.rp-filters');
    if (!form) { return; }
    form.querySelector('[name=pmode][value=' + F.pmode + ']').checked = true;
    form.querySelector('[name=month]').value = F.month;
    form.querySelector('[name=from]').value = F.from;
    form.querySelector('[name=to]').value = F.to;
    form.querySelector('[name=organisation]').value = F.organisation;
    form.querySelector('[name=channel]').value = F.channel;
    form.querySelector('[name=type]').value = F.type;
    $$('[data-pmode]').forEach(function (el) { el.hidden = el.getAttribute('data-pmode') !== F.pmode; });
  }
  function readForm() {
    var form = $('.rp-filters');
    F.pmode = form.querySelector('[name=pmode]:checked').value;
    F.month = form.querySelector('[name=month]').value || cfg.month;
    F.from = form.querySelector('[name=from]').value;
    F.to = form.querySelector('[name=to]').value;
    F.organisation = cfg.own_organisation ? String(cfg.own_organisation) : form.querySelector('[name=organisation]').value;
    F.channel = form.querySelector('[name=channel]').value;
    F.type = form.querySelector('[name=type]').value;
    $$('[data-pmode]').forEach(function (el) { el.hidden = el.getAttribute('data-pmode') !== F.pmode; });
  }
  function syncLinks() {
    var x = $('[data-testid=rp-xlsx]'), c = $('[data-testid=rp-csv]'), sel = $('[data-testid=rp-csv-table]'), pr = $('[data-testid=rp-print]');
    if (x) { x.href = API + '/export.xlsx?' + qs({lang: lang}); }
    if (c && sel) { c.href = API + '/export.csv?' + qs({table: sel.value, lang: lang}); }
    if (pr) { pr.href = '/reports/print?month=' + encodeURIComponent(rankMonth()) + (F.organisation ? '&organisation=' + encodeURIComponent(F.organisation) : ''); }
    if (!PRINT && window.history && window.history.replaceState) {
      window.history.replaceState(null, '', window.location.pathname + '?' + qs({lang: null}));
    }
  }

  // --- charts ---------------------------------------------------------------------------------------
  var charts = {};
  function chart(name) {
    var el = $('[data-chart=' + name + ']');
    if (!el || !window.echarts) { return null; }
    if (!charts[name]) {
      charts[name] = window.echarts.init(el, null, {renderer: PRINT ? 'svg' : 'canvas', locale: lang === 'en' ? 'EN' : 'ZH'});
    }
    return charts[name];
  }
  function baseOption() {
    return {animation: !PRINT, color: COLORS, textStyle: {fontFamily: getComputedStyle(document.body).fontFamily},
      tooltip: {trigger: 'axis', confine: true}, grid: {left: 48, right: 24, top: 36, bottom: 54, containLabel: true}};
  }
  function emptyChart(name) {
    var c = chart(name);
    if (!c) { return; }
    c.clear();
    c.setOption({animation: false, title: {text: t('rp.empty'), left: 'center', top: 'middle', textStyle: {color: '#94a3b8', fontSize: 13, fontWeight: 'normal'}}});
  }
  window.addEventListener('resize', function () { Object.keys(charts).forEach(function (k) { charts[k].resize(); }); });

  // --- figures that open their incidents ------------------------------------------------------------
  // <a class="fig" data-measure="sign_off_miss" data-q='{"organisation": 3, "month": "2026-11"}' data-label="...">
  function fig(text, measure, extra, lbl, testid) {
    return '<a href="#" class="fig" data-measure="' + esc(measure) + '" data-q="' + esc(JSON.stringify(extra || {})) +
      '" data-label="' + esc(lbl || '') + '"' + (testid ? ' data-testid="' + esc(testid) + '"' : '') + '>' + text + '</a>';
  }
  function measureLabel(measure) {
    if (measure.indexOf('outcome:') === 0) { return t('rp.measure.outcome', {outcome: measure.slice(8)}); }
    return t('rp.measure.' + measure);
  }

  // --- sections ---------------------------------------------------------------------------------------
  var KPI_SPECS = [
    {k: 'sign_off_rate', measure: 'sign_off_miss', target: 'sign_off_rate'},
    {k: 'first_feedback_rate', measure: 'first_feedback_miss', target: 'first_feedback_rate'},
    {k: 'close_rate', measure: 'close_miss', target: 'close_rate'},
    {k: 'overdue_now', measure: 'overdue'},
    {k: 'mediation_rate', measure: 'mediated', target: 'mediation_rate', from: 'outcomes'},
    {k: 'station_share', measure: 'accident', target: 'station_share', from: 'outcomes'}
  ];
  function renderKpis(sla, outcomes) {
    var el = $('[data-testid=rp-kpis]');
    if (!el) { return; }
    var own = null;
    if (sla && F.organisation) { own = aggregateRows(sla.rows || []); }
    var base = own || (sla ? sla.county : null) || {};
    el.innerHTML = KPI_SPECS.map(function (s) {
      var v = s.from === 'outcomes' ? (outcomes ? outcomes[s.k] : null) : base[s.k];
      var shown = s.k === 'overdue_now' ? num(v) : pct(v);
      var tgt = s.target && cfg.targets ? cfg.targets[s.target] : null;
      var cls = tgt === null || tgt === undefined || v === null || v === undefined ? '' : (v >= tgt ? 'good' : 'bad');
      if (s.k === 'overdue_now') { cls = v ? 'bad' : 'good'; }
      return '<div class="rp-kpi ' + cls + '" data-kpi="' + s.k + '">' +
        fig('<span class="v">' + shown + '</span>', s.measure, {}, t('rp.kpi.' + s.k), 'rp-kpi-' + s.k) +
        '<div class="l">' + esc(t('rp.kpi.' + s.k)) + '</div>' +
        (tgt !== null && tgt !== undefined ? '<div class="tg">' + esc(t('rp.target', {v: pct(tgt)})) + '</div>' : '') + '</div>';
    }).join('');
  }
  function aggregateRows(rows) {  // one organisation's months summed (a period longer than a month)
    var a = {legs: 0, sign_off_met: 0, sign_off_decided: 0, first_feedback_met: 0, first_feedback_decided: 0, close_met: 0,
      close_decided: 0, overdue_now: 0};
    rows.forEach(function (r) { Object.keys(a).forEach(function (k) { a[k] += Number(r[k] || 0); }); });
    ['sign_off', 'first_feedback', 'close'].forEach(function (c) {
      a[c + '_rate'] = a[c + '_decided'] ? a[c + '_met'] / a[c + '_decided'] : null;
    });
    // overdue_now is a property of today, repeated on each month row: take the largest
    a.overdue_now = rows.reduce(function (m, r) { return Math.max(m, Number(r.overdue_now || 0)); }, 0);
    return a;
  }

  function rateCell(row, clock, q) {
    var met = row[clock + '_met'], dec = row[clock + '_decided'], rate = row[clock + '_rate'];
    var tgt = cfg.targets ? cfg.targets[clock + '_rate'] : null;
    var cls = rate === null || rate === undefined ? 'muted' : (tgt && rate < tgt ? 'bad' : 'good');
    var missed = (dec || 0) - (met || 0);
    return '<td class="num ' + cls + '">' + fig(pct(rate), clock + '_miss', q, t('rp.kpi.' + clock + '_rate'), 'rp-sla-' + clock) +
      '<div class="cnt">' + num(met) + '/' + num(dec) + (missed ? ' · ' + t('rp.missed', {n: missed}) : '') + '</div></td>';
  }
  function renderSla(sla) {
    var el = $('[data-testid=rp-sla]');
    if (!sla) { el.innerHTML = ''; return; }
    var head = '<tr><th>' + t('rp.col.organisation') + '</th><th>' + t('rp.col.month') + '</th><th class="num">' + t('rp.col.legs') +
      '</th><th class="num">' + t('rp.col.sign_off') + '</th><th class="num">' + t('rp.col.first_feedback') + '</th><th class="num">' +
      t('rp.col.close') + '</th><th class="num">' + t('rp.col.overdue_now') + '</th></tr>';
    var rows = (sla.rows || []).map(function (r) {
      var q = {organisation: r.organisation_id, month: r.month, from: null, to: null};
      var mine = cfg.own_organisation && r.organisation_id === cfg.own_organisation;
      return '<tr class="' + (mine ? 'mine' : '') + '" data-org="' + esc(r.organisation_id) + '" data-month="' + esc(r.month) + '"><td>' +
        esc(orgName(r)) + '</td><td>' + esc(r.month) + '</td><td class="num">' + fig(num(r.legs), 'all', q, t('rp.measure.all')) + '</td>' +
        rateCell(r, 'sign_off', q) + rateCell(r, 'first_feedback', q) + rateCell(r, 'close', q) +
        '<td class="num">' + fig(num(r.overdue_now), 'overdue', {organisation: r.organisation_id}, t('rp.measure.overdue')) + '</td></tr>';
    });
    if (sla.county) {
      var c = sla.county, q = {organisation: null};
      rows.push('<tr class="county" data-testid="rp-sla-county"><td>' + esc(t('rp.county_compare')) + '</td><td>' +
        esc(c.month || (F.pmode === 'range' && F.from && F.to ? F.from + ' – ' + F.to : F.month)) + '</td><td class="num">' + fig(num(c.legs), 'all', q, t('rp.measure.all')) + '</td>' +
        rateCell(c, 'sign_off', q) + rateCell(c, 'first_feedback', q) + rateCell(c, 'close', q) +
        '<td class="num">' + fig(num(c.overdue_now), 'overdue', q, t('rp.measure.overdue')) + '</td></tr>');
    }
    el.innerHTML = (sla.empty ? '<div class="empty-note" data-testid="rp-sla-empty">' + esc(t('rp.empty')) + '</div>' : '') +
      '<table class="table-compact rp-table" data-rows="' + (sla.rows || []).length + '">' + head + rows.join('') + '</table>';
  }

  function renderOverdue(od) {
    var el = $('[data-testid=rp-overdue]');
    var rows = (od && od.rows) || [];
    if (!rows.length) { el.innerHTML = '<div class="empty-note" data-testid="rp-overdue-none">' + esc(t('rp.overdue.none')) + '</div>'; return; }
    el.innerHTML = '<table class="table-compact rp-table" data-rows="' + rows.length + '"><tr><th>' + t('rp.col.code') + '</th><th>' +
      t('rp.col.organisation') + '</th><th>' + t('rp.col.clock') + '</th><th>' + t('rp.col.due_at') + '</th><th class="num">' +
      t('rp.col.late') + '</th></tr>' + rows.map(function (r) {
        return '<tr data-leg="' + esc(r.leg_id) + '"><td class="code">' + esc(r.code) + '</td><td>' + esc(lang === 'en' ? (r.organisation_en || r.organisation) : r.organisation) + '</td><td>' +
          esc(t('rp.clock.' + r.clock)) + '</td><td>' + esc(G.time(r.due_at)) + '</td><td class="num bad">' + esc(span(r.late_s)) + '</td></tr>';
      }).join('') + '</table>';
  }

  var ARR_FILTER = {by_organisation: 'organisation', by_channel: 'channel', by_type: 'type'};
  var arrState = {tab: 'by_organisation', data: null};
  function arrLabel(tab, r) {
    if (tab === 'by_channel') { return t('channel.' + r.key, String(r.key)); }
    if (tab === 'by_area') { return t('rp.area.' + r.key, label(r)); }
    if (tab === 'by_type' && !r.label) { return typeName(r.key); }
    return label(r);
  }
  function renderArrivals(data) {
    if (data !== undefined) { arrState.data = data; }
    data = arrState.data;
    var tab = arrState.tab;
    $$('[data-arr]').forEach(function (b) { b.classList.toggle('on', b.getAttribute('data-arr') === tab); });
    var rows = (data && data[tab]) || [];
    var el = $('[data-testid=rp-arrivals]');
    if (!rows.length) { el.innerHTML = '<div class="empty-note">' + esc(t('rp.empty')) + '</div>'; emptyChart('arrivals'); return; }
    el.innerHTML = '<table class="table-compact rp-table" data-rows="' + rows.length + '"><tr><th>' + t('rp.arr.' + tab) + '</th><th class="num">' +
      t('rp.col.n') + '</th><th class="num">' + t('rp.col.mean') + '</th><th class="num">' + t('rp.col.p50') + '</th><th class="num">' +
      t('rp.col.p90') + '</th></tr>' + rows.map(function (r) {
        var q = {}; if (ARR_FILTER[tab]) { q[ARR_FILTER[tab]] = r.key; }
        return '<tr><td>' + esc(arrLabel(tab, r)) + '</td><td class="num">' + fig(num(r.n), 'all', q, arrLabel(tab, r)) + '</td><td class="num">' +
          mins(r.mean_s) + '</td><td class="num">' + mins(r.p50_s) + '</td><td class="num">' + mins(r.p90_s) + '</td></tr>';
      }).join('') + '</table>';
    var c = chart('arrivals');
    if (!c) { return; }
    var opt = baseOption();
    opt.legend = {top: 0};
    opt.xAxis = {type: 'category', data: rows.map(function (r) { return arrLabel(tab, r); }), axisLabel: {interval: 0, rotate: rows.length > 6 ? 35 : 0}};
    opt.yAxis = {type: 'value', name: t('rp.minutes')};
    opt.series = [['mean_s', 'rp.col.mean'], ['p50_s', 'rp.col.p50'], ['p90_s', 'rp.col.p90']].map(function (s) {
      return {name: t(s[1]), type: 'bar', data: rows.map(function (r) { return r[s[0]] === null || r[s[0]] === undefined ? null : Math.round(r[s[0]] / 6) / 10; })};
    });
    c.clear(); c.setOption(opt);
    c.off('click');
    c.on('click', function (p) {
      var r = rows[p.dataIndex]; if (!r) { return; }
      var q = {}; if (ARR_FILTER[tab]) { q[ARR_FILTER[tab]] = r.key; }
      openIncidents('all', q, arrLabel(tab, r));
    });
  }

  function renderOutcomes(o) {
    var sh = $('[data-testid=rp-shares]'), el = $('[data-testid=rp-outcomes]');
    if (!o) { sh.innerHTML = ''; el.innerHTML = ''; emptyChart('outcomes'); return; }
    sh.innerHTML = [['accident_incidents', 'accident', num], ['station_share', 'accident', pct], ['accident_section_share', 'accident', pct],
      ['mediation_rate', 'mediated', pct]].map(function (s) {
      return '<div class="rp-share" data-share="' + s[0] + '">' + fig('<b>' + s[2](o[s[0]]) + '</b>', s[1], {}, t('rp.out.' + s[0]), 'rp-share-' + s[0]) +
        '<span>' + esc(t('rp.out.' + s[0])) + '</span></div>';
    }).join('');
    var outs = o.outcomes || [], direct = o.closed_without_dispatch || [];
    function table(list, title) {
      if (!list.length) { return ''; }
      return '<table class="table-compact rp-table"><tr><th>' + esc(title) + '</th><th class="num">' + t('rp.col.n') + '</th></tr>' +
        list.map(function (r) {
          return '<tr><td>' + esc(label(r)) + '</td><td class="num">' + fig(num(r.n), 'outcome:' + r.code, {}, label(r), 'rp-outcome-' + r.code) + '</td></tr>';
        }).join('') + '</table>';
    }
    el.innerHTML = (outs.length || direct.length) ? table(outs, t('rp.out.outcomes')) + table(direct, t('rp.out.closed_without_dispatch'))
      : '<div class="empty-note">' + esc(t('rp.empty')) + '</div>';
    var c = chart('outcomes');
    if (!c) { return; }
    if (!outs.length && !direct.length) { emptyChart('outcomes'); return; }
    var opt = {animation: !PRINT, color: COLORS, tooltip: {trigger: 'item', confine: true, formatter: function (p) { return esc(p.name) + ': ' + num(p.value) + ' (' + p.percent + '%)'; }},
      legend: {type: 'scroll', bottom: 0},
      series: [{name: t('rp.out.outcomes'), type: 'pie', radius: ['36%', '62%'], center: ['50%', '45%'],
        label: {formatter: '{b}\n{d}%'},
        data: outs.map(function (r) { return {name: label(r), value: r.n, code: r.code}; })
          .concat(direct.map(function (r) { return {name: label(r) + ' ' + t('rp.out.no_dispatch_tag'), value: r.n, code: r.code}; }))}]};
    c.clear(); c.setOption(opt);
    c.off('click');
    c.on('click', function (p) { if (p.data && p.data.code) { openIncidents('outcome:' + p.data.code, {}, p.name); } });
  }

  function stars(v) {
    var out = '', s = Number(v) || 0;
    for (var i = 1; i <= 5; i++) {
      if (s >= i) { out += icon('star', 'star-on'); } else if (s >= i - 0.5) { out += icon('star-half-stroke', 'star-on'); } else { out += icon('star', 'star-off'); }
    }
    return '<span class="stars" title="' + esc(String(s)) + '" data-stars="' + esc(String(s)) + '">' + out + '</span>';
  }
  function change(c) {
    if (c === null || c === undefined) { return '<span class="chg new">' + esc(t('rp.rank.new')) + '</span>'; }
    if (c > 0) { return '<span class="chg up" title="' + esc(t('rp.rank.up', {n: c})) + '">' + icon('arrow-up') + c + '</span>'; }
    if (c < 0) { return '<span class="chg down" title="' + esc(t('rp.rank.down', {n: -c})) + '">' + icon('arrow-down') + (-c) + '</span>'; }
    return '<span class="chg same">' + icon('minus') + '</span>';
  }
  var rankState = {month: null};
  function renderRanking(rk) {
    var el = $('[data-testid=rp-ranking]'), m = $('[data-testid=rp-rank-month]');
    var rows = (rk && rk.rows) || [];
    rankState.month = rk ? rk.month : null;
    if (m) { m.textContent = rk ? rk.month + (rk.weights && rk.weights.version ? ' · ' + t('rp.rank.weights', {v: rk.weights.version}) : '') : ''; }
    if (!rows.length) { el.innerHTML = '<div class="empty-note">' + esc(t('rp.empty')) + '</div>'; return; }
    el.innerHTML = '<table class="table-compact rp-table rp-rank-table" data-rows="' + rows.length + '"><tr><th class="num">' + t('rp.col.rank') +
      '</th><th>' + t('rp.col.change') + '</th><th>' + t('rp.col.organisation') + '</th><th>' + t('rp.col.stars') + '</th><th class="num">' +
      t('rp.col.score') + '</th></tr>' + rows.map(function (r) {
        var mine = cfg.own_organisation && r.organisation_id === cfg.own_organisation;
        return '<tr class="' + (mine ? 'mine' : '') + '" data-org="' + esc(r.organisation_id) + '" data-testid="rp-rank-row"><td class="num rank">' +
          esc(r.rank) + '</td><td>' + change(r.rank_change) + '</td><td>' + esc(orgName(r)) + '</td><td>' + stars(r.stars) +
          '</td><td class="num">' + (PRINT || (cfg.own_organisation && !mine) || r.score === null || r.score === undefined ?
          esc(r.score === null || r.score === undefined ? '—' : Number(r.score).toFixed(1)) : '<button type="button" class="score" data-action="score" data-org="' +
          esc(r.organisation_id) + '" data-testid="rp-score" title="' + esc(t('rp.rank.click')) + '">' + esc(Number(r.score).toFixed(1)) + '</button>') + '</td></tr>';
      }).join('') + '</table>';
  }
  function explainScore(orgId) {
    var el = $('[data-testid=rp-rank-detail]');
    if (!el) { return; }
    $$('.rp-rank-table tr').forEach(function (tr) { tr.classList.toggle('sel', tr.getAttribute('data-org') === String(orgId)); });
    el.innerHTML = '<div class="empty-note">' + esc(t('rp.loading')) + '</div>';
    G.api('GET', API + '/ranking/' + encodeURIComponent(orgId) + '?' + qs({month: rankState.month || rankMonth()}, true)).then(function (d) {
      var parts = d.parts || [];
      var row = d.row || d;
      el.innerHTML = '<h3 data-testid="rp-rank-detail-title">' + esc(t('rp.rank.explain', {name: orgName(row)})) + ' <b>' +
        esc(row.score === undefined ? '' : Number(row.score).toFixed(1)) + '</b></h3>' +
        '<table class="table-compact rp-table" data-testid="rp-rank-parts"><tr><th>' + t('rp.col.measure') + '</th><th class="num">' + t('rp.col.value') +
        '</th><th class="num">' + t('rp.col.weight') + '</th><th class="num">' + t('rp.col.points') + '</th></tr>' +
        parts.map(function (p) {
          var isRate = p.value !== null && p.value !== undefined && Number(p.value) <= 1 && Number(p.value) >= 0;
          return '<tr data-measure="' + esc(p.measure) + '"><td>' + esc(label(p)) + '</td><td class="num">' + (isRate ? pct(p.value) : num(p.value)) +
            '</td><td class="num">' + esc(pct(p.weight)) + '</td><td class="num">' + esc(p.points === null || p.points === undefined ? '—' : Number(p.points).toFixed(1)) + '</td></tr>';
        }).join('') + '</table>' +
        parts.map(function (p) {
          var legs = p.legs || [];
          if (!legs.length) { return ''; }
          var miss = legs.filter(function (l) { return l.met === false; }).length;
          return '<div class="rp-legs" data-testid="rp-rank-legs" data-measure="' + esc(p.measure) + '"><div class="lh">' + esc(label(p)) + ' · ' +
            esc(t('rp.rank.legs', {n: legs.length, miss: miss})) + '</div>' + legs.slice(0, 200).map(function (l) {
              return '<span class="leg ' + (l.met === false ? 'miss' : (l.met ? 'met' : '')) + '" title="' + esc(t(l.met === false ? 'rp.rank.missed' : 'rp.rank.met')) +
                '">' + esc(l.code || ('#' + l.leg_id)) + '</span>';
            }).join('') + (legs.length > 200 ? '<span class="more">+' + (legs.length - 200) + '</span>' : '') + '</div>';
        }).join('');
    }).catch(function (e) { el.innerHTML = '<div class="rp-msg">' + esc(e.message) + '</div>'; });
  }

  function renderTrends(tr) {
    if (!tr || !tr.months || !tr.months.length) { emptyChart('trend_rates'); emptyChart('trend_volume'); return; }
    var s = tr.series || {}, months = tr.months;
    var c = chart('trend_rates');
    if (c) {
      var o = baseOption();
      o.title = {text: t('rp.trend.rates'), left: 0, top: 0, textStyle: {fontSize: 13}};
      o.legend = {bottom: 0, type: 'scroll'};
      o.grid = {left: 48, right: 24, top: 44, bottom: 40, containLabel: true};
      o.tooltip.valueFormatter = function (v) { return v === null || v === undefined ? '—' : v.toFixed(1) + '%'; };
      o.xAxis = {type: 'category', data: months};
      o.yAxis = {type: 'value', axisLabel: {formatter: '{value}%'}, scale: true};
      o.series = [['sign_off_rate', 'rp.kpi.sign_off_rate', 'sign_off_miss'], ['first_feedback_rate', 'rp.kpi.first_feedback_rate', 'first_feedback_miss'],
        ['close_rate', 'rp.kpi.close_rate', 'close_miss'], ['mediation_rate', 'rp.kpi.mediation_rate', 'mediated']].map(function (x) {
        return {name: t(x[1]), type: 'line', connectNulls: false, symbolSize: 6, measure: x[2],
          data: (s[x[0]] || []).map(function (v) { return v === null || v === undefined ? null : Math.round(v * 1000) / 10; })};
      });
      c.clear(); c.setOption(o);
      c.off('click');
      c.on('click', function (p) {
        var m = months[p.dataIndex], ser = o.series[p.seriesIndex];
        if (m && ser) { openIncidents(ser.measure, {month: m, from: null, to: null}, p.seriesName + ' · ' + m); }
      });
    }
    var v = chart('trend_volume');
    if (v) {
      var o2 = baseOption();
      o2.title = {text: t('rp.trend.volume'), left: 0, top: 0, textStyle: {fontSize: 13}};
      o2.legend = {bottom: 0};
      o2.grid = {left: 48, right: 24, top: 56, bottom: 40, containLabel: true};
      o2.xAxis = {type: 'category', data: months};
      o2.yAxis = [{type: 'value', name: t('rp.trend.incidents')}, {type: 'value', name: t('rp.minutes'), splitLine: {show: false}}];
      o2.series = [{name: t('rp.trend.incidents'), type: 'bar', data: s.incidents || [], barMaxWidth: 26},
        {name: t('rp.trend.arrival'), type: 'line', yAxisIndex: 1, symbolSize: 6,
          data: (s.mean_arrival_s || []).map(function (x) { return x === null || x === undefined ? null : Math.round(x / 6) / 10; })}];
      v.clear(); v.setOption(o2);
      v.off('click');
      v.on('click', function (p) { var m = months[p.dataIndex]; if (m) { openIncidents('all', {month: m, from: null, to: null}, t('rp.measure.all') + ' · ' + m); } });
    }
  }

  function renderHeatmap(hm) {
    var c = chart('heatmap');
    if (!c) { return; }
    var cells = (hm && hm.cells) || [];
    if (!cells.length) { emptyChart('heatmap'); return; }
    var hours = []; for (var h = 0; h < 24; h++) { hours.push(String(h)); }
    var days = [1, 2, 3, 4, 5, 6, 7].map(function (d) { return t('rp.wd.' + d); });
    var max = cells.reduce(function (m, x) { return Math.max(m, x[2]); }, 0);
    c.clear();
    c.setOption({animation: !PRINT, tooltip: {position: 'top', confine: true,
      formatter: function (p) { return esc(days[p.data[1]]) + ' ' + p.data[0] + ':00–' + p.data[0] + ':59 · ' + esc(t('rp.heat.n', {n: p.data[2]})); }},
      grid: {left: 56, right: 16, top: 12, bottom: 70},
      xAxis: {type: 'category', data: hours, axisLabel: {formatter: '{value}' + t('rp.hour_suffix')}, splitArea: {show: true}},
      yAxis: {type: 'category', data: days, inverse: true, splitArea: {show: true}},
      visualMap: {min: 0, max: Math.max(1, max), calculable: true, orient: 'horizontal', left: 'center', bottom: 0, itemHeight: 120,
        inRange: {color: ['#f8fafc', '#bfdbfe', '#3b82f6', '#1e3a8a']}},
      series: [{name: t('rp.heat.title'), type: 'heatmap', data: cells.map(function (x) { return [x[1], x[0] - 1, x[2]]; }),
        emphasis: {itemStyle: {borderColor: '#0f172a', borderWidth: 1}}}]});
    // a cell opens its incidents (the same filters, that weekday and local hour)
    c.off('click');
    c.on('click', function (p) {
      if (!p.data) { return; }
      openIncidents('all', {weekday: p.data[1] + 1, hour: p.data[0]}, t('rp.heat.cell', {day: days[p.data[1]], hour: p.data[0]}));
    });
  }

  // --- grid choropleth (Leaflet; the page has no basemap: the grids are the map) --------------------------
  var mapState = {map: null, layer: null, fc: null, measure: 'incidents', legend: null};
  var RAMP = ['#f1f5f9', '#fde68a', '#fbbf24', '#f97316', '#dc2626', '#7f1d1d'];
  function breaks(values) {
    var max = values.reduce(function (m, v) { return Math.max(m, v || 0); }, 0);
    if (!max) { return [0]; }
    var b = [0]; for (var i = 1; i < RAMP.length - 1; i++) { b.push(Math.ceil(max * i / (RAMP.length - 1))); }
    return b;
  }
  function colorOf(v, b) {
    if (!v) { return RAMP[0]; }
    var i = 1; while (i < b.length && v > b[i]) { i++; }
    return RAMP[Math.min(i, RAMP.length - 1)];
  }
  function renderGrids(fc) {
    var el = $('[data-testid=rp-map]');
    if (!el || !window.L) { return; }
    if (fc !== undefined) { mapState.fc = fc; }
    fc = mapState.fc;
    if (!mapState.map) {
      mapState.map = L.map(el, {zoomControl: true, attributionControl: false, zoomSnap: 0.25});
      mapState.map.setView([36.9, 117.7], 10);
    }
    if (mapState.layer) { mapState.map.removeLayer(mapState.layer); mapState.layer = null; }
    if (mapState.legend) { mapState.map.removeControl(mapState.legend); mapState.legend = null; }
    var feats = (fc && fc.features) || [];
    el.setAttribute('data-features', String(feats.length));
    if (!feats.length) { return; }
    var key = mapState.measure;
    var b = breaks(feats.map(function (f) { return f.properties[key]; }));
    mapState.layer = L.geoJSON(fc, {
      style: function (f) { return {color: '#475569', weight: 0.8, fillColor: colorOf(f.properties[key], b), fillOpacity: 0.78}; },
      onEachFeature: function (f, layer) {
        var p = f.properties;
        layer.bindTooltip('<b>' + esc(p.name || p.code) + '</b><br>' + esc(t('rp.map.incidents')) + ' ' + num(p.incidents) + ' · ' +
          esc(t('rp.map.sla_misses')) + ' ' + num(p.sla_misses), {sticky: true, className: 'gp-tip'});
        // a grid opens its incidents: all of them, or those with a missed clock on the misses' map
        layer.on('click', function () {
          openIncidents(key === 'sla_misses' ? 'any_miss' : 'all', {grid: f.id}, p.name || p.code);
        });
      }
    }).addTo(mapState.map);
    var bounds = mapState.layer.getBounds();
    if (bounds.isValid()) { mapState.map.fitBounds(bounds, {padding: [8, 8]}); }
    var legend = L.control({position: 'bottomright'});
    legend.onAdd = function () {
      var d = L.DomUtil.create('div', 'gisapp-legend rp-legend');
      var rows = ['<div class="lg-title">' + esc(t('rp.map.' + key)) + '</div>'];
      rows.push('<div class="lg-row"><span class="lg-fill" style="background:' + RAMP[0] + '"></span>0</div>');
      for (var i = 1; i < b.length; i++) {
        rows.push('<div class="lg-row"><span class="lg-fill" style="background:' + RAMP[i] + '"></span>' + (b[i - 1] + 1) + '–' + b[i] + '</div>');
      }
      if (b.length > 1) { rows.push('<div class="lg-row"><span class="lg-fill" style="background:' + RAMP[RAMP.length - 1] + '"></span>&gt; ' + b[b.length - 1] + '</div>'); }
      d.innerHTML = '<div class="lg-body">' + rows.join('') + '</div>';
      return d;
    };
    legend.addTo(mapState.map);
    mapState.legend = legend;
  }

  // --- the incidents behind a figure (drawer) -----------------------------------------------------------
  var drawer = {measure: null, q: null, offset: 0, total: 0, rows: 0};
  var PAGE = 50;
  function openIncidents(measure, extra, lbl) {
    var el = $('[data-testid=rp-drawer]');
    if (!el || PRINT) { return; }
    drawer = {measure: measure, q: extra || {}, offset: 0, total: 0, rows: 0};
    el.hidden = false;
    el.setAttribute('data-measure', measure);
    el.setAttribute('data-state', 'loading');
    var ml = measureLabel(measure);  // the figure's name and what is listed: "90 s sign-off · sign-off missed"
    $('[data-testid=rp-drawer-title]').textContent = t('rp.drawer.title', {label: lbl && lbl !== ml && measure !== 'all' ? lbl + ' · ' + ml : (lbl || ml)});
    $('[data-testid=rp-drawer-list]').innerHTML = '<div class="empty-note">' + esc(t('rp.loading')) + '</div>';
    $('[data-testid=rp-drawer-total]').textContent = '';
    loadIncidents(false);
  }
  function loadIncidents(more) {
    var el = $('[data-testid=rp-drawer]');
    var q = {}; Object.keys(drawer.q).forEach(function (k) { q[k] = drawer.q[k]; });
    q.measure = drawer.measure; q.limit = PAGE; q.offset = drawer.offset;
    G.api('GET', API + '/incidents?' + qs(q)).then(function (d) {
      var rows = d.rows || [];
      drawer.total = d.total || 0;
      var list = $('[data-testid=rp-drawer-list]');
      var html = rows.map(function (r) {
        return '<tr data-incident="' + esc(r.incident_id) + '" data-testid="rp-incident"><td class="code">' + esc(r.code) + '</td><td>' +
          esc(G.time(r.reported_at, 'full')) + '</td><td>' + esc(lang === 'en' ? (r.type_label_en || r.type_label || typeName(r.type)) : (r.type_label || typeName(r.type))) +
          '</td><td>' + esc(t('channel.' + r.channel, String(r.channel || ''))) + '</td><td>' + esc(lang === 'en' ? (r.organisation_en || r.organisation || '') : (r.organisation || '')) +
          '</td><td>' + esc(t('dp.status.' + r.status, String(r.status || ''))) + '</td><td>' +
          esc(lang === 'en' ? (r.outcome_label_en || r.outcome_label || r.outcome || '') : (r.outcome_label || r.outcome || '')) + '</td></tr>';
      }).join('');
      if (!more) {
        list.innerHTML = rows.length ? '<table class="table-compact rp-table"><tr><th>' + t('rp.col.code') + '</th><th>' + t('rp.col.reported') + '</th><th>' +
          t('rp.col.type') + '</th><th>' + t('rp.col.channel') + '</th><th>' + t('rp.col.organisation') + '</th><th>' + t('rp.col.status') + '</th><th>' +
          t('rp.col.outcome') + '</th></tr>' + html + '</table>' : '<div class="empty-note">' + esc(t('rp.drawer.none')) + '</div>';
      } else {
        list.querySelector('table').insertAdjacentHTML('beforeend', html);
      }
      drawer.offset += rows.length;
      drawer.rows += rows.length;
      $('[data-testid=rp-drawer-total]').textContent = t('rp.total', {n: drawer.total, shown: drawer.rows});
      $('[data-testid=rp-drawer-more]').hidden = drawer.offset >= drawer.total || !rows.length;
      el.setAttribute('data-state', 'ready');
      el.setAttribute('data-total', String(drawer.total));
    }).catch(function (e) {
      $('[data-testid=rp-drawer-list]').innerHTML = '<div class="rp-msg">' + esc(e.message) + '</div>';
      el.setAttribute('data-state', 'error');
    });
  }

  // --- loading --------------------------------------------------------------------------------------------
  var seq = 0;
  function showError(msg) {
    var el = $('[data-testid=rp-error]');
    if (!el) { return; }
    el.hidden = !msg;
    el.textContent = msg || '';
  }
  function get(path, q) {
    return G.api('GET', API + '/' + path + (q ? '?' + q : '')).then(function (d) { return {ok: true, data: d}; },
      function (e) { return {ok: false, error: e}; });
  }
  function load() {
    var my = ++seq;
    root.setAttribute('data-state', 'loading');
    var status = $('[data-testid=rp-status]');
    if (status) { status.textContent = t('rp.loading'); }
    syncLinks();
    var calls = {
      sla: get('sla', qs()), overdue: get('overdue', qs()), arrivals: get('arrivals', qs()),
      outcomes: get('outcomes', qs()), ranking: get('ranking', qs({month: rankMonth()}, true)),
      trends: get('trends', qs({months: 12})), heatmap: get('heatmap', qs())
    };
    if (!PRINT) { calls.grids = get('grids', qs()); }
    var names = Object.keys(calls);
    return Promise.all(names.map(function (n) { return calls[n]; })).then(function (res) {
      if (my !== seq) { return; }
      var R = {}, errors = [];
      names.forEach(function (n, i) {
        R[n] = res[i].ok ? res[i].data : null;
        if (!res[i].ok) { errors.push(res[i].error.message); }
      });
      var steps = [
        function () { renderKpis(R.sla, R.outcomes); }, function () { renderSla(R.sla); }, function () { renderOverdue(R.overdue); },
        function () { renderArrivals(R.arrivals); }, function () { renderOutcomes(R.outcomes); }, function () { renderRanking(R.ranking); },
        function () { renderTrends(R.trends); }, function () { renderHeatmap(R.heatmap); }
      ];
      if (!PRINT) { steps.push(function () { renderGrids(R.grids); }); }
      steps.forEach(function (fn) {
        try { fn(); } catch (err) { errors.push(String(err && err.message || err)); if (window.console) { console.warn(err); } }
      });
      // one message per distinct error (the same 4xx answers every call)
      var uniq = errors.filter(function (m, i) { return errors.indexOf(m) === i; });
      showError(uniq.length ? t('rp.error', {message: uniq.join('；')}) : '');
      if (status) { status.textContent = ''; }
      root.setAttribute('data-seq', String(my));
      root.setAttribute('data-query', qs());
      root.setAttribute('data-state', uniq.length ? 'error' : 'ready');
      window.gisappReports.data = R;
    });
  }

  // --- events -----------------------------------------------------------------------------------------------
  root.addEventListener('click', function (ev) {
    var a = ev.target.closest('a.fig');
    if (a && root.contains(a)) {
      ev.preventDefault();
      if (PRINT) { return; }
      var extra = {};
      try { extra = JSON.parse(a.getAttribute('data-q') || '{}'); } catch (err) { extra = {}; }
      openIncidents(a.getAttribute('data-measure'), extra, a.getAttribute('data-label'));
      return;
    }
    var b = ev.target.closest('[data-action]');
    if (!b) { return; }
    var act = b.getAttribute('data-action');
    if (act === 'score') { explainScore(b.getAttribute('data-org')); }
    if (act === 'close-drawer') { $('[data-testid=rp-drawer]').hidden = true; }
    if (act === 'more') { loadIncidents(true); }
  });
  $$('[data-arr]').forEach(function (btn) {
    btn.addEventListener('click', function () { arrState.tab = btn.getAttribute('data-arr'); renderArrivals(); });
  });
  var form = $('.rp-filters');
  if (form) {
    syncForm();
    form.addEventListener('change', function (ev) {
      if (ev.target.name === 'pmode') {
        readForm();
        if (F.pmode === 'range' && (!F.from || !F.to)) {  // start from the month shown
          F.from = F.month + '-01';
          F.to = cfg.today.slice(0, 7) === F.month ? cfg.today : lastDay(F.month);
          syncForm();
        }
      } else {
        readForm();
      }
      load();
    });
    form.addEventListener('submit', function (ev) { ev.preventDefault(); readForm(); load(); });
  }
  function lastDay(month) {
    var y = Number(month.slice(0, 4)), m = Number(month.slice(5, 7));
    var d = new Date(Date.UTC(y, m, 0)).getUTCDate();
    return month + '-' + (d < 10 ? '0' : '') + d;
  }
  root.querySelectorAll('[name=gmeasure]').forEach(function (r) {
    r.addEventListener('change', function () { mapState.measure = r.value; renderGrids(); });
  });
  var csvSel = $('[data-testid=rp-csv-table]');
  if (csvSel) { csvSel.addEventListener('change', syncLinks); }
  document.addEventListener('keydown', function (ev) { if (ev.key === 'Escape') { var d = $('[data-testid=rp-drawer]'); if (d) { d.hidden = true; } } });
  var printBtn = document.querySelector('[data-action=print]');
  if (printBtn) { printBtn.addEventListener('click', function () { window.print(); }); }

  window.gisappReports = {filters: F, reload: load, charts: charts, open: openIncidents, explain: explainScore, data: null};
  load();
})();
