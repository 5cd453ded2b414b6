/* The 推演 (replay) panel on /map/plan (issue 15): a period, a baseline and a scenario are posted to
 * /api/v1/planning/replays and run as background jobs; the runs are listed with their progress
 * (polled while any is active); a finished run shows before/after charts (Apache ECharts, vendored
 * in web/static/vendor/echarts) and, on the map, the arrival-time change per grid (a diverging
 * colour scale with its legend) and the areas whose owner changes. A failed run says why.
 * Texts: gisapp/core/i18n.py, keys 'pl.rp.'. This file is MIT-licensed as part of the project.
 */
(function () {
  'use strict';
  var EN = (document.getElementById('plan-tools') || {dataset: {}}).dataset.lang === 'en';
  var RAMP = ['#2166ac', '#67a9cf', '#d1e5f0', '#f7f7f7', '#fddbc7', '#ef8a62', '#b2182b'];
  var S = {plans: [], stations: [], jobs: [], selected: null, result: null, delta: null, changed: null,
           charts: {}, timer: null, periodSet: false};

  function $(id) { return document.getElementById(id); }
  function t(k) { return window.gisapp.t(k); }
  function esc(s) { return window.gisapp.esc(s); }
  function api(method, url, body) { return window.gisapp.api(method, url, body); }
  function msg(text, err) { var m = $('rp-msg'); m.textContent = text || ''; m.className = 'plan-msg' + (err ? ' err' : ''); }
  function mins(s) { return s === null || s === undefined ? null : +(s / 60).toFixed(2); }
  function orgName(r) { return (EN && r.name_en ? r.name_en : r.name) || r.code; }
  function fmtMin(v) { return v === null || v === undefined ? '—' : (+v).toFixed(1) + ' ' + t('pl.min'); }

  // --- the form ----------------------------------------------------------------------------------
  function forms() { return Array.prototype.slice.call(document.querySelectorAll('#replay-panel .rp-scenario')); }

  function fillSelects() {
    var areaPlans = S.plans.filter(function (p) { return p.status !== 'archived' && p.origin !== 'mclp' && p.area_count > 0; });
    var postPlans = S.plans.filter(function (p) { return p.status !== 'archived' && p.origin === 'mclp'; });
    var opt = function (p) { return '<option value="' + p.id + '">#' + p.id + ' ' + esc(p.name) + '</option>'; };
    forms().forEach(function (fs) {
      var plan = fs.querySelector('.rp-plan'), prop = fs.querySelector('.rp-proposal'), st = fs.querySelector('.rp-stations');
      var keep = [plan.value, prop.value];
      plan.innerHTML = areaPlans.map(opt).join('');
      prop.innerHTML = postPlans.map(opt).join('');
      if (keep[0]) { plan.value = keep[0]; }
      if (keep[1]) { prop.value = keep[1]; }
      if (!st.options.length) {
        st.innerHTML = S.stations.map(function (o) {
          return '<option value="' + esc(o.code) + '">' + esc(orgName(o)) + ' (' + esc(o.code) + ')</option>';
        }).join('');
      }
    });
  }

  function toggle(fs) {
    var b = fs.querySelector('.rp-boundaries').value;
    fs.querySelector('.rp-bdate').hidden = b !== 'at';
    fs.querySelector('.rp-plan').hidden = b !== 'plan';
    fs.querySelector('.rp-stations').hidden = fs.querySelector('.rp-participation').value !== 'stations';
    fs.querySelector('.rp-proposal').hidden = fs.querySelector('.rp-roster').value !== 'posts';
  }

  function scenarioOf(fs) {
    var q = function (c) { return fs.querySelector(c); };
    var b = {kind: q('.rp-boundaries').value};
    if (b.kind === 'at') { b.date = q('.rp-bdate').value; }
    if (b.kind === 'plan') { b.plan_id = parseInt(q('.rp-plan').value, 10) || null; }
    var p = {kind: q('.rp-participation').value};
    if (p.kind === 'stations') {
      p.stations = Array.prototype.filter.call(q('.rp-stations').options, function (o) { return o.selected; })
        .map(function (o) { return o.value; });
    }
    var r = {kind: q('.rp-roster').value, cars_scale: parseFloat(q('.rp-scale').value)};
    if (r.kind === 'posts') { r.proposal_id = parseInt(q('.rp-proposal').value, 10) || null; }
    return {name: q('.rp-name').value.trim(), boundaries: b, participation: p, roster: r};
  }

  function run() {
    var body = {period: {from: $('rp-from').value, to: $('rp-to').value}};
    forms().forEach(function (fs) { body[fs.dataset.side] = scenarioOf(fs); });
    msg(t('pl.working'));
    return api('POST', '/api/v1/planning/replays', body).then(function (r) {
      msg(t('pl.rp.queued').replace('{id}', r.job.id));
      S.selected = r.job.id;
      return loadJobs();
    }).catch(function (e) { msg(e.message, true); });
  }

  // --- the runs --------------------------------------------------------------------------------
  function active(j) { return j.status === 'queued' || j.status === 'running'; }

  function loadJobs() {
    return api('GET', '/api/v1/planning/replays').then(function (r) {
      S.jobs = r.jobs;
      if (!S.periodSet && r.last_incident_date) {
        var last = new Date(r.last_incident_date + 'T00:00:00Z'), first = new Date(last.getTime() - 29 * 86400000);
        $('rp-to').value = r.last_incident_date;
        $('rp-from').value = first.toISOString().slice(0, 10);
        S.periodSet = true;
      }
      renderJobs();
      var sel = S.jobs.filter(function (j) { return j.id === S.selected; })[0];
      if (sel && sel.status === 'done' && (!S.result || S.result.id !== sel.id)) { openJob(sel.id); }
      clearTimeout(S.timer);
      if (S.jobs.some(active)) { S.timer = setTimeout(function () { loadJobs().catch(function () {}); }, 1000); }
    });
  }

  function names(j) {
    var n = (j.params && j.params.names) || {};
    return (n.baseline || t('pl.rp.baseline')) + ' → ' + (n.scenario || t('pl.rp.scenario'));
  }

  function renderJobs() {
    var box = $('rp-jobs');
    if (!S.jobs.length) { box.innerHTML = '<div class="plan-hint">' + esc(t('pl.rp.no_runs')) + '</div>'; return; }
    box.innerHTML = S.jobs.slice(0, 12).map(function (j) {
      var pct = Math.round((j.progress || 0) * 100), p = j.params && j.params.period ? j.params.period : {};
      return '<div class="rp-job ' + j.status + (j.id === S.selected ? ' sel' : '') + '" data-id="' + j.id +
        '" data-status="' + j.status + '" data-testid="rp-job">' +
        '<b>#' + j.id + '</b> ' + esc(names(j)) + ' · ' + esc(p.from || '') + '–' + esc(p.to || '') +
        ' · <span data-testid="rp-job-status">' + esc(t('pl.rp.st.' + j.status)) + '</span> ' + pct + '%' +
        (active(j) ? ' <button type="button" class="btn btn-link" data-cancel="' + j.id + '" data-testid="rp-cancel">' +
          esc(t('pl.rp.cancel')) + '</button>' : '') +
        '<div class="plan-hint">' + esc(window.gisapp.time(j.created_at)) + ' · ' + esc(j.created_by) + '</div>' +
        '<div class="rp-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="' + pct +
        '" data-testid="rp-progress"><i style="width:' + pct + '%"></i></div>' +
        (j.status === 'failed' && j.error ? '<div class="rp-err" data-testid="rp-job-error">' + esc(j.error.message) + '</div>' : '') +
        '</div>';
    }).join('');
    box.querySelectorAll('.rp-job').forEach(function (el) {
      el.addEventListener('click', function (e) {
        if (e.target.dataset.cancel) { return; }
        S.selected = parseInt(el.dataset.id, 10);
        renderJobs();
        openJob(S.selected);
      });
    });
    box.querySelectorAll('[data-cancel]').forEach(function (b) {
      b.addEventListener('click', function () {
        api('POST', '/api/v1/planning/replays/' + b.dataset.cancel + '/cancel').then(function () {
          msg(t('pl.rp.cancelled')); return loadJobs();
        }).catch(function (e) { msg(e.message, true); });
      });
    });
  }

  function openJob(id) {
    return api('GET', '/api/v1/planning/replays/' + id).then(function (r) {
      var j = r.job;
      if (j.status === 'failed') { clearResult(); msg(t('pl.rp.failed') + (j.error ? j.error.message : ''), true); return; }
      if (j.status !== 'done') { msg(t('pl.rp.st.' + j.status) + ' ' + Math.round(j.progress * 100) + '%'); return; }
      msg('');
      showResult(j);
    }).catch(function (e) { msg(e.message, true); });
  }

  // --- a result: charts and map ------------------------------------------------------------------
  function clearResult() {
    ['delta', 'changed'].forEach(function (k) { if (S[k]) { gisapp.map.removeLayer(S[k]); S[k] = null; } });
    Object.keys(S.charts).forEach(function (k) { S.charts[k].dispose(); });
    S.charts = {};
    S.result = null;
    $('rp-result').hidden = true;
  }

  function chart(id, option) {
    if (!window.echarts) { return null; }
    var c = window.echarts.init($(id), null, {renderer: 'canvas', locale: EN ? 'EN' : 'ZH'});
    option.animation = false;
    c.setOption(option);
    S.charts[id] = c;
    return c;
  }

  function pair(title, labels, before, after, unit, horizontal) {
    var cat = {type: 'category', data: labels, axisLabel: horizontal ? {fontSize: 10, width: 90, overflow: 'truncate'}
      : {fontSize: 10, interval: 0}};
    var val = {type: 'value', axisLabel: {fontSize: 10}, name: unit, nameTextStyle: {fontSize: 10}};
    if (horizontal) { cat.inverse = true; }
    return {
      title: {text: title, textStyle: {fontSize: 12}, left: 0, top: 0},
      legend: {data: [t('pl.rp.baseline'), t('pl.rp.scenario')], right: 0, top: 0, textStyle: {fontSize: 11}},
      grid: {left: 4, right: 12, top: 28, bottom: 4, containLabel: true},
      tooltip: {trigger: 'axis', axisPointer: {type: 'shadow'}, valueFormatter: function (v) {
        return v === null || v === undefined ? '—' : v + (unit ? ' ' + unit : '');
      }},
      xAxis: horizontal ? val : cat, yAxis: horizontal ? cat : val,
      series: [{name: t('pl.rp.baseline'), type: 'bar', data: before, itemStyle: {color: '#94a3b8'}},
               {name: t('pl.rp.scenario'), type: 'bar', data: after, itemStyle: {color: '#1d4ed8'}}]
    };
  }

  function deltaOption(d) {
    var rows = [['pl.rp.d.mean', d.mean_arrival_s], ['pl.rp.d.accident', d.accident_mean_arrival_s]];
    var labels = rows.map(function (r) { return t(r[0]); });
    var vals = rows.map(function (r) { return mins((r[1] || {}).value); });
    var ci = rows.map(function (r, i) { return [i, mins((r[1] || {}).ci_low), mins((r[1] || {}).ci_high)]; });
    return {
      title: {text: t('pl.rp.delta_title'), textStyle: {fontSize: 12}, left: 0, top: 0},
      grid: {left: 4, right: 16, top: 28, bottom: 4, containLabel: true},
      tooltip: {trigger: 'item', formatter: function (p) {
        var i = p.dataIndex, r = rows[i][1] || {};
        return esc(labels[i]) + ': ' + fmtMin(mins(r.value)) + '<br>95% CI ' + fmtMin(mins(r.ci_low)) + ' … ' + fmtMin(mins(r.ci_high));
      }},
      xAxis: {type: 'value', name: t('pl.min'), axisLabel: {fontSize: 10}},
      yAxis: {type: 'category', data: labels, inverse: true, axisLabel: {fontSize: 10}},
      series: [
        {type: 'bar', data: vals.map(function (v) { return {value: v, itemStyle: {color: v === null ? '#ccc' : (v <= 0 ? '#2166ac' : '#b2182b')}}; }),
         barWidth: '45%'},
        {type: 'custom', data: ci.filter(function (c) { return c[1] !== null && c[2] !== null; }), encode: {x: [1, 2], y: 0}, z: 10,
         renderItem: function (params, a) {
           var lo = a.coord([a.value(1), a.value(0)]), hi = a.coord([a.value(2), a.value(0)]), h = a.size([0, 1])[1] * 0.25;
           var st = {stroke: '#111827', lineWidth: 1.5};
           return {type: 'group', children: [
             {type: 'line', shape: {x1: lo[0], y1: lo[1], x2: hi[0], y2: hi[1]}, style: st},
             {type: 'line', shape: {x1: lo[0], y1: lo[1] - h, x2: lo[0], y2: lo[1] + h}, style: st},
             {type: 'line', shape: {x1: hi[0], y1: hi[1] - h, x2: hi[0], y2: hi[1] + h}, style: st}]};
         }}
      ]
    };
  }

  function colour(d, max) {
    if (d === null || d === undefined) { return null; }
    var x = Math.max(-1, Math.min(1, d / max));
    return RAMP[Math.round((x + 1) / 2 * (RAMP.length - 1))];
  }

  function showResult(j) {
    clearResult();
    var c = j.result, b = c.baseline, s = c.scenario, d = c.delta;
    S.result = {id: j.id};
    $('rp-result').hidden = false;
    $('rp-result-title').textContent = '#' + j.id + ' ' + names(j);
    var wt = d.within_target_share || {};
    var pp = function (v) { return v === null || v === undefined ? '—' : (v * 100).toFixed(1); };
    $('rp-summary').innerHTML = esc(t('pl.rp.summary')
      .replace('{n}', b.incidents).replace('{from}', (j.params.period || {}).from).replace('{to}', (j.params.period || {}).to)
      .replace('{d}', fmtMin(mins((d.mean_arrival_s || {}).value)))
      .replace('{lo}', fmtMin(mins((d.mean_arrival_s || {}).ci_low))).replace('{hi}', fmtMin(mins((d.mean_arrival_s || {}).ci_high)))
      .replace('{a}', fmtMin(mins((d.accident_mean_arrival_s || {}).value)))
      .replace('{w}', pp(wt.value)).replace('{wlo}', pp(wt.ci_low)).replace('{whi}', pp(wt.ci_high))
      .replace('{c}', c.changed_owner.count));
    // charts
    chart('rp-chart-delta', deltaOption(d));
    var st = ['mean', 'p50', 'p90'], lab = [];
    var bv = [], sv = [];
    [['all', 'pl.rp.all'], ['accident', 'pl.rp.accident']].forEach(function (k) {
      st.forEach(function (q) {
        lab.push(t(k[1]) + '\n' + (q === 'mean' ? t('pl.rp.mean') : q));
        bv.push(mins((b.arrival_s[k[0]] || {})[q]));
        sv.push(mins((s.arrival_s[k[0]] || {})[q]));
      });
    });
    chart('rp-chart-arrival', pair(t('pl.rp.arrival_title'), lab, bv, sv, t('pl.min'), false));
    var wl = c.workload.slice().sort(function (x, y) { return Math.max(y.baseline, y.scenario) - Math.max(x.baseline, x.scenario); })
      .slice(0, 18);
    chart('rp-chart-workload', pair(t('pl.rp.workload_title'), wl.map(orgName), wl.map(function (r) { return r.baseline; }),
      wl.map(function (r) { return r.scenario; }), t('pl.rp.legs'), true));
    chart('rp-chart-target', pair(t('pl.rp.target_title').replace('{m}', Math.round(b.within_target.target_s / 60)),
      [t('pl.rp.share')], [b.within_target.share === null ? null : +(b.within_target.share * 100).toFixed(1)],
      [s.within_target.share === null ? null : +(s.within_target.share * 100).toFixed(1)], '%', true));
    // map: arrival-time change per grid, diverging scale symmetric around zero
    // the scale ends at the 95th percentile of |change| (a few extreme grids do not wash out the rest)
    var feats = c.per_grid.features, abs = [];
    feats.forEach(function (f) { var v = mins(f.properties.delta_s); if (v !== null) { abs.push(Math.abs(v)); } });
    abs.sort(function (x, y) { return x - y; });
    var max = +Math.max(0.5, abs.length ? abs[Math.min(abs.length - 1, Math.floor(abs.length * 0.95))] : 0).toFixed(1);
    S.delta = L.geoJSON(c.per_grid, {
      style: function (f) {
        var col = colour(mins(f.properties.delta_s), max);
        return {color: '#475569', weight: 0.6, fillColor: col || '#ffffff', fillOpacity: col ? 0.75 : 0.1};
      },
      onEachFeature: function (f, l) {
        var p = f.properties;
        l.bindTooltip(esc(t('pl.rp.grid_tip').replace('{name}', p.name || p.code).replace('{code}', p.code)
          .replace('{b}', fmtMin(mins(p.baseline_s))).replace('{s}', fmtMin(mins(p.scenario_s)))
          .replace('{d}', fmtMin(mins(p.delta_s))).replace('{n}', p.n)), {sticky: true});
      }
    });
    S.changed = L.geoJSON(c.changed_owner.areas, {
      style: {color: '#9333ea', weight: 2.5, dashArray: '6 4', fill: false},
      onEachFeature: function (f, l) {
        var p = f.properties;
        l.bindTooltip(esc(t('pl.rp.changed_tip').replace('{name}', p.name || p.code).replace('{from}', p.from_org || '—')
          .replace('{to}', p.to_org || '—').replace('{n}', p.changed)), {sticky: true});
      }
    });
    if ($('rp-show-delta').checked) { S.delta.addTo(gisapp.map); }
    if ($('rp-show-changed').checked) { S.changed.addTo(gisapp.map); }
    $('rp-legend').innerHTML = '<div>' + esc(t('pl.rp.legend_title')) + '</div><div class="rp-ramp"></div>' +
      '<div class="rp-ramp-labels"><span>≤ −' + max + ' ' + esc(t('pl.min')) + ' ' + esc(t('pl.rp.faster')) + '</span><span>0</span><span>≥ +' +
      max + ' ' + esc(t('pl.min')) + ' ' + esc(t('pl.rp.slower')) + '</span></div>' +
      '<div><i style="display:inline-block;width:14px;height:0;border-top:2.5px dashed #9333ea;margin:0 4px 3px 0"></i>' +
      esc(t('pl.rp.layer_changed')) + ' (' + c.changed_owner.areas.features.length + ')</div>';
    if (feats.length) { gisapp.map.fitBounds(S.delta.getBounds(), {padding: [16, 16]}); }
  }

  // --- wiring ------------------------------------------------------------------------------------
  function init(G) {
    if (!$('replay-panel')) { return; }
    forms().forEach(function (fs) {
      ['.rp-boundaries', '.rp-participation', '.rp-roster'].forEach(function (c) {
        fs.querySelector(c).addEventListener('change', function () { toggle(fs); });
      });
    });
    var sc = document.querySelector('#replay-panel .rp-scenario[data-side=scenario] .rp-participation');
    if (sc) { sc.value = 'squadrons_alone'; toggle(sc.closest('fieldset')); }
    $('rp-run').addEventListener('click', function () { run(); });
    $('rp-show-delta').addEventListener('change', function () {
      if (S.delta) { if (this.checked) { S.delta.addTo(G.map); } else { G.map.removeLayer(S.delta); } }
    });
    $('rp-show-changed').addEventListener('change', function () {
      if (S.changed) { if (this.checked) { S.changed.addTo(G.map); } else { G.map.removeLayer(S.changed); } }
    });
    api('GET', '/api/v1/organisations?limit=1000').then(function (fc) {
      S.stations = fc.features.map(function (f) { return f.properties; }).filter(function (o) { return o.kind === 'station'; });
      fillSelects();
    }).catch(function (e) { msg(e.message, true); });
    loadJobs().catch(function (e) { msg(e.message, true); });
  }

  window.gisappReplay = {
    state: S, run: run, loadJobs: loadJobs, openJob: openJob,
    setPlans: function (plans) { S.plans = plans; fillSelects(); }
  };
  if (window.gisapp && gisapp.onReady) { gisapp.onReady(init); }
  else { document.addEventListener('gisapp:ready', function (e) { init(e.detail); }); }
}());
