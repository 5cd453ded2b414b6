/* The planner's tools on /map/plan (issue 7): drafts, proposals, drawing and reshaping,
 * validation issues on the map, the comparison table, publishing. Talks to /api/v1/plans;
 * the draw control and its editable group come from gisapp/planning_ui.py (gisapp.planDraw).
 * This file is MIT-licensed as part of the project.
 */
(function () {
  'use strict';
  var EN = (document.getElementById('plan-tools') || {dataset: {}}).dataset.lang === 'en';
  var state = {plan: null, orgs: [], issues: null, changed: null, changedAreas: null, posts: null, charts: {}, gridSuggest: {}};

  function $(id) { return document.getElementById(id); }
  function esc(s) { return window.gisapp.esc(s); }
  function t(k) { return window.gisapp.t(k); }  // texts: gisapp/core/i18n.py, keys 'pl.'
  function msg(text, err) { var m = $('plan-msg'); if (m) { m.textContent = text || ''; m.className = 'plan-msg' + (err ? ' err' : ''); } }

  function api(method, url, body) { return window.gisapp.api(method, url, body); }
  function fail(e) { msg(e.message, true); }

  function colour(key) {
    var h = 0, s = String(key);
    for (var i = 0; i < s.length; i++) { h = (h * 31 + s.charCodeAt(i)) % 360; }
    return 'hsl(' + h + ',65%,42%)';
  }

  // --- drafts list ---------------------------------------------------------------------------
  function loadPlans(selectId) {
    return api('GET', '/api/v1/plans').then(function (plans) {
      var sel = $('plan-select');
      sel.innerHTML = '<option value="">' + esc(t('pl.none')) + '</option>' + plans.filter(function (p) {
        return p.status !== 'archived';
      }).map(function (p) {
        return '<option value="' + p.id + '">#' + p.id + ' ' + esc(p.name) + ' · ' + esc(t('pl.kind.' + p.kind)) + ' · ' +
          esc(statusText(p)) + '</option>';
      }).join('');
      if (selectId) { sel.value = String(selectId); }
      showUpcoming(plans);
      if (window.gisappReplay && window.gisappReplay.setPlans) { window.gisappReplay.setPlans(plans); }
      return selectId ? selectPlan(selectId) : null;
    });
  }

  // A published plan whose effective time is still ahead is "scheduled" (the API's plan.state):
  // its layout is not in force yet, the current versions stay, and it can no longer be edited.
  function statusText(p) {
    if (p.state === 'scheduled') { return t('pl.scheduled_for').replace('{date}', window.gisapp.time(p.effective_from)); }
    return t('pl.status.' + p.status);
  }

  function showUpcoming(plans) {
    var box = $('plan-upcoming');
    if (!box) { return; }
    var due = plans.filter(function (p) { return p.state === 'scheduled'; });
    box.hidden = !due.length;
    box.innerHTML = due.map(function (p) {
      return '<div data-plan="' + p.id + '">' + esc(t('pl.upcoming').replace('{id}', p.id).replace('{name}', p.name)
        .replace('{kind}', t('pl.kind.' + p.kind)).replace('{date}', window.gisapp.time(p.effective_from))) + '</div>';
    }).join('');
  }

  function loadOrgs() {
    return api('GET', '/api/v1/organisations?limit=1000').then(function (fc) {
      state.orgs = fc.features.map(function (f) { return f.properties; });
    });
  }

  function loadZones() {
    return api('GET', '/api/v1/joint_zones?limit=100').then(function (fc) {
      $('plan-zone').innerHTML = fc.features.map(function (f) {
        return '<option value="' + esc(f.properties.code) + '">' + esc(f.properties.name) + '</option>';
      }).join('');
    });
  }

  function fillTargets(kind) {
    var kinds = kind === 'traffic' ? ['squadron', 'station', 'accident_section'] : ['station'];
    var sel = $('plan-target'), keep = sel.value;   // the planner's 划给 choice survives a reload
    sel.innerHTML = '<option value=""></option>' + state.orgs.filter(function (o) {
      return kinds.indexOf(o.kind) >= 0;
    }).map(function (o) {
      return '<option value="' + o.id + '">' + esc(EN && o.name_en ? o.name_en : o.name) + ' (' + esc(o.code) + ')</option>';
    }).join('');
    if (keep && sel.querySelector('option[value="' + keep + '"]')) { sel.value = keep; }
  }

  // --- one draft on the map ------------------------------------------------------------------
  function clearOverlays() {
    ['issues', 'changed', 'changedAreas', 'posts'].forEach(function (k) {
      if (state[k]) { gisapp.map.removeLayer(state[k]); state[k] = null; }
    });
    var legend = $('plan-changed-legend');
    if (legend) { legend.remove(); }
  }

  // keepView: a reload after an edit keeps the map where the planner is drawing (no zoom out to
  // the whole county); only choosing another plan fits the map to it.
  function selectPlan(id, keepView) {
    var items = gisapp.planDraw.items;
    items.clearLayers();
    clearOverlays();
    $('plan-issues').innerHTML = '';
    $('plan-comparison').innerHTML = '';
    hideCharts();
    if (!id) {
      state.selectSeq = (state.selectSeq || 0) + 1;
      state.plan = null; $('plan-current').hidden = true;
      var bar0 = gisapp.planDraw.control && gisapp.planDraw.control.getContainer ? gisapp.planDraw.control.getContainer() : null;
      if (bar0) { bar0.style.display = ''; }
      return Promise.resolve();
    }
    // the last plan asked for wins: a reload's answer arriving after the planner chose another
    // plan must not put the old one back
    var seq = state.selectSeq = (state.selectSeq || 0) + 1;
    return api('GET', '/api/v1/plans/' + id).then(function (plan) {
      if (seq !== state.selectSeq) { return; }
      state.plan = plan;
      $('plan-current').hidden = false;
      $('plan-meta').textContent = '#' + plan.id + ' ' + plan.name + ' · ' + t('pl.kind.' + plan.kind) + ' · ' + statusText(plan) +
        (plan.effective_from && plan.state !== 'scheduled' ? ' · ' + window.gisapp.time(plan.effective_from) : '');
      $('plan-objective').innerHTML = objectiveHtml(plan.objective || {});
      fillTargets(plan.kind);
      var editable = plan.status === 'draft';
      // only a draft is edited (the API answers 409 otherwise): the tools go away for the others
      $('plan-edit').hidden = !editable;
      $('plan-publish').hidden = !editable;
      if (gisapp.planDraw.control) {
        var bar = gisapp.planDraw.control.getContainer ? gisapp.planDraw.control.getContainer() : null;
        if (bar) { bar.style.display = editable ? '' : 'none'; }
      }
      var sch = $('plan-scheduled');
      sch.hidden = plan.state !== 'scheduled';
      sch.textContent = plan.state === 'scheduled'
        ? t('pl.scheduled_note').replace('{date}', window.gisapp.time(plan.effective_from)) : '';
      plan.areas.features.forEach(function (f) {
        if (!f.geometry) { return; }
        var key = f.properties.organisation_id || f.properties.zone_code;
        L.geoJSON(f, {style: {color: colour(key), weight: 2, fillOpacity: 0.12}}).eachLayer(function (layer) {
          layer.areaId = f.id;
          layer.feature = f;
          layer.bindTooltip(esc(f.properties.label || f.properties.zone_code || ''), {sticky: true});
          if (editable) { items.addLayer(layer); } else { layer.addTo(items); }
        });
      });
      if (plan.posts.features.length) {
        state.posts = L.geoJSON(plan.posts, {pointToLayer: function (f, ll) {
          return L.circleMarker(ll, {radius: 7, color: '#1d4ed8', fillOpacity: 0.8})
            .bindTooltip(esc(f.properties.period + ' #' + f.properties.rank + ' +' + f.properties.covered_incidents));
        }}).addTo(gisapp.map);
      }
      if (items.getLayers().length && !keepView) { gisapp.map.fitBounds(items.getBounds(), {padding: [16, 16]}); }
    });
  }

  function objectiveHtml(o) {
    if (!o.method) { return ''; }
    var a = o.published || {}, b = o.proposal || {}, id = function (x) { return x; }, parts = [];
    if (o.method === 'mclp') {
      parts.push(t('pl.covered') + ' ' + arrow(a.covered, b.covered, false, id) + ' / ' + b.incidents +
        ' ' + t('pl.baseline').replace('{n}', a.baseline));
    } else {
      parts.push(t('pl.mean_time') + ' ' + arrow(a.mean_incident_time_s, b.mean_incident_time_s, true, mins) + ' ' + t('pl.min'));
      parts.push('CV ' + arrow(a.workload_cv, b.workload_cv, true, id));
      if (o.method === 'balanced') { parts.push(t('pl.objective') + ' ' + arrow(a.balanced_objective, b.balanced_objective, true, id)); }
    }
    return '<b>' + esc(EN ? o.statement : (o.statement_zh || o.statement)) + '</b><br>' + parts.join(' · ');
  }

  function reload() { return state.plan ? selectPlan(state.plan.id, true) : Promise.resolve(); }

  // --- editing ---------------------------------------------------------------------------------
  function target() {
    var v = $('plan-target').value;
    if (!v) { throw new Error(t('pl.pickTarget')); }
    return parseInt(v, 10);
  }

  function inRing(pt, ring) {
    var x = pt[0], y = pt[1], inside = false;
    for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      var xi = ring[i][0], yi = ring[i][1], xj = ring[j][0], yj = ring[j][1];
      if (((yi > y) !== (yj > y)) && (x < (xj - xi) * (y - yi) / (yj - yi) + xi)) { inside = !inside; }
    }
    return inside;
  }
  function areaAt(pt) {
    var found = null;
    gisapp.planDraw.items.eachLayer(function (l) {
      var g = l.feature && l.feature.geometry;
      if (!g || found) { return; }
      var polys = g.type === 'Polygon' ? [g.coordinates] : g.coordinates;
      polys.forEach(function (p) { if (!found && inRing(pt, p[0])) { found = l.areaId; } });
    });
    return found;
  }

  function onCreated(e) {
    var layer = e.layer;
    setTimeout(function () { gisapp.planDraw.items.removeLayer(layer); }, 0);
    if (!state.plan || state.plan.status !== 'draft') { return; }
    var geom = layer.toGeoJSON().geometry, p;
    try {
      if (e.layerType === 'polyline') {
        var c = geom.coordinates, area = areaAt(c[0]) || areaAt(c[c.length - 1]);
        if (!area) {  // the line starts outside: the area under its middle vertex
          area = areaAt(c[Math.floor(c.length / 2)]);
        }
        if (!area) { throw new Error(t('pl.noArea')); }
        p = api('POST', '/api/v1/plans/areas/' + area + '/split', {line: geom, to_organisation_id: target()});
      } else {
        p = api('POST', '/api/v1/plans/' + state.plan.id + '/reassign', {geometry: geom, to_organisation_id: target()});
      }
    } catch (err) { fail(err); return; }
    msg(t('pl.working'));
    p.then(function () { msg(t('pl.saved')); return reload(); }).catch(fail);
  }

  function onEdited(e) {
    var calls = [];
    e.layers.eachLayer(function (l) {
      if (l.areaId) { calls.push(api('PATCH', '/api/v1/plans/areas/' + l.areaId, {geometry: l.toGeoJSON().geometry})); }
    });
    msg(t('pl.working'));
    Promise.all(calls).then(function () { msg(t('pl.saved')); return reload(); }).catch(fail);
  }

  // --- validation and comparison -------------------------------------------------------------
  function validate() {
    clearOverlays();
    return api('GET', '/api/v1/plans/' + state.plan.id + '/validation').then(function (v) {
      var box = $('plan-issues');
      if (v.valid) { box.innerHTML = '<div class="better">' + esc(t('pl.valid')) + '</div>'; return v; }
      var fc = {type: 'FeatureCollection', features: v.issues.filter(function (i) { return i.geometry; }).map(function (i, n) {
        return {type: 'Feature', geometry: i.geometry, properties: {n: n, text: EN ? i.message_en : i.message_zh}};
      })};
      state.issues = L.geoJSON(fc, {
        style: {color: '#dc2626', weight: 3, fillColor: '#dc2626', fillOpacity: 0.45},
        pointToLayer: function (f, ll) { return L.circleMarker(ll, {radius: 8, color: '#dc2626', fillOpacity: 0.6}); },
        onEachFeature: function (f, l) { l.bindTooltip(esc(f.properties.text)); }
      }).addTo(gisapp.map);
      box.innerHTML = '<div class="worse">' + v.issues.length + esc(t('pl.issues')) + '</div>' + v.issues.map(function (i, n) {
        return '<div class="plan-issue" data-n="' + n + '" data-code="' + esc(i.code) + '"><span class="code">' +
          esc(t('pl.issue.' + i.code)) + '</span>' +
          esc(EN ? i.message_en : i.message_zh) + '</div>';
      }).join('');
      box.querySelectorAll('.plan-issue').forEach(function (el) {
        el.addEventListener('click', function () {
          var issue = v.issues[parseInt(el.dataset.n, 10)];
          if (issue.grid_code && $('plan-grid-code')) {   // a cut grid: ready to move by its name
            var label = issue.grid_name + ' (' + issue.grid_code + ')';
            state.gridSuggest[label] = issue.grid_code;
            $('plan-grid-code').value = label;
          }
          if (!issue.geometry) { return; }
          var b = L.geoJSON(issue.geometry).getBounds();
          gisapp.map.fitBounds(b, {maxZoom: 15, padding: [40, 40]});
        });
      });
      return v;
    }).catch(fail);
  }

  function num(v) { return v === null || v === undefined ? '—' : Math.round(v).toLocaleString(); }
  function pct(v) { return v === null || v === undefined ? '—' : (v * 100).toFixed(1) + '%'; }
  function mins(s) { return s === null || s === undefined ? '—' : (s / 60).toFixed(1); }
  function arrow(a, b, lowerBetter, fmt) {
    if (a === null || a === undefined || b === null || b === undefined) { return fmt(a) + ' → ' + fmt(b); }
    var cls = a === b ? '' : ((b < a) === lowerBetter ? 'better' : 'worse');
    return fmt(a) + ' → <span class="' + cls + '">' + fmt(b) + '</span>';
  }

  // --- comparison: summary line, charts per jurisdiction (ECharts, web/static/vendor/echarts),
  // the changed areas and the incidents that change owner on the map ---------------------------
  function hideCharts() {
    Object.keys(state.charts).forEach(function (k) { state.charts[k].dispose(); });
    state.charts = {};
    if ($('plan-charts')) { $('plan-charts').hidden = true; }
  }

  function chart(id) {
    if (!window.echarts) { return null; }
    var el = $(id);
    if (state.charts[id]) { state.charts[id].dispose(); }
    state.charts[id] = window.echarts.init(el, null, {renderer: 'canvas', locale: EN ? 'EN' : 'ZH'});
    return state.charts[id];
  }

  function pairChart(id, title, labels, before, after, fmt) {
    var c = chart(id);
    if (!c) { return; }
    c.setOption({
      title: {text: title, textStyle: {fontSize: 12}, left: 0, top: 0},
      legend: {data: [t('pl.before'), t('pl.after')], right: 0, top: 0, textStyle: {fontSize: 11}},
      grid: {left: 4, right: 8, top: 26, bottom: 4, containLabel: true},
      tooltip: {trigger: 'axis', axisPointer: {type: 'shadow'}, valueFormatter: fmt},
      xAxis: {type: 'value', axisLabel: {fontSize: 10}},
      yAxis: {type: 'category', data: labels, inverse: true, axisLabel: {fontSize: 10, width: 90, overflow: 'truncate'}},
      series: [{name: t('pl.before'), type: 'bar', data: before, itemStyle: {color: '#94a3b8'}, barGap: '10%'},
               {name: t('pl.after'), type: 'bar', data: after, itemStyle: {color: '#1d4ed8'}}],
      animation: false
    });
  }

  function changedAreasLayer(fc) {
    if (!fc || !fc.features.length) { return null; }
    return L.geoJSON(fc, {
      style: {color: '#9333ea', weight: 2, dashArray: '5 3', fillColor: '#c084fc', fillOpacity: 0.45},
      onEachFeature: function (f, l) {
        var p = f.properties;
        l.bindTooltip(esc(t('pl.changed_area_tip').replace('{from}', p.from_name || p.from_code || '')
          .replace('{to}', p.to_name || p.to_code || '').replace('{km2}', p.area_km2)), {sticky: true});
      }
    });
  }

  function compare() {
    clearOverlays();
    hideCharts();
    msg(t('pl.working'));
    return api('GET', '/api/v1/plans/' + state.plan.id + '/comparison').then(function (c) {
      msg('');
      var s = c.summary, id = function (x) { return x; };
      var areas = (c.changed_areas || {features: []}).features;
      $('plan-comparison').innerHTML =
        '<div class="plan-meta">' + esc(t('pl.cv')) + ': ' + arrow(s.published.workload_cv, s.draft.workload_cv, true, id) +
        ' · p90 ' + arrow(s.published.incident_time_s.p90, s.draft.incident_time_s.p90, true, mins) + ' · ' +
        c.changed_incidents.count + ' ' + esc(t('pl.changed')) + ' · ' + areas.length + ' ' + esc(t('pl.changed_areas')) +
        '</div><div class="plan-legend" data-testid="plan-changed-legend"><i style="background:#c084fc;border:1px dashed #9333ea"></i>' +
        esc(t('pl.changed_area')) + '<i style="background:#ea580c;border-radius:50%;width:8px;height:8px"></i>' +
        esc(t('pl.changed_incident')) + '</div>';
      var rows = c.jurisdictions.filter(function (r) { return r.published || r.draft; });
      var labels = rows.map(function (r) { return r.name || r.code; });
      var val = function (side, f) { return rows.map(function (r) { var v = f(r[side] || {}); return v === null || v === undefined ? null : v; }); };
      $('plan-charts').hidden = false;
      pairChart('plan-chart-incidents', t('pl.inc'), labels, val('published', function (x) { return x.incidents; }),
        val('draft', function (x) { return x.incidents; }), function (v) { return num(v); });
      pairChart('plan-chart-p90', t('pl.p90'), labels,
        val('published', function (x) { var v = (x.incident_time_s || {}).p90; return v === null || v === undefined ? null : +(v / 60).toFixed(1); }),
        val('draft', function (x) { var v = (x.incident_time_s || {}).p90; return v === null || v === undefined ? null : +(v / 60).toFixed(1); }),
        function (v) { return v === null || v === undefined ? '—' : v + ' ' + t('pl.min'); });
      pairChart('plan-chart-share', t('pl.share') + ' (%)', labels,
        val('published', function (x) { var v = (x.road_km_within_target || {}).share; return v === null || v === undefined ? null : +(v * 100).toFixed(1); }),
        val('draft', function (x) { var v = (x.road_km_within_target || {}).share; return v === null || v === undefined ? null : +(v * 100).toFixed(1); }),
        function (v) { return v === null || v === undefined ? '—' : v + '%'; });
      state.changedAreas = changedAreasLayer(c.changed_areas);
      if (state.changedAreas) { state.changedAreas.addTo(gisapp.map); }
      state.changed = L.geoJSON(c.changed_incidents.geojson, {pointToLayer: function (f, ll) {
        var p = f.properties;
        return L.circleMarker(ll, {radius: 2, color: '#ea580c', weight: 1, opacity: 0.6, fillOpacity: 0.5})
          .bindTooltip(esc(t('pl.changed_tip').replace('{code}', p.code).replace('{type}', t('itype.' + p.type))
            .replace('{from}', p.from_code).replace('{to}', p.to_code)));
      }}).addTo(gisapp.map);
      return c;
    }).catch(fail);
  }

  // --- wiring --------------------------------------------------------------------------------
  function init(G) {
    if (!G.planDraw || !$('plan-tools')) { return; }
    G.map.on('draw:created', onCreated);
    G.map.on('draw:edited', onEdited);
    $('plan-select').addEventListener('change', function () { selectPlan(this.value).catch(fail); });
    $('plan-reload').addEventListener('click', function () { loadPlans(state.plan && state.plan.id).catch(fail); });
    $('plan-new').addEventListener('submit', function (e) {
      e.preventDefault();
      api('POST', '/api/v1/plans', {name: $('plan-new-name').value, kind: $('plan-new-kind').value})
        .then(function (p) { msg(t('pl.saved')); return loadPlans(p.id); }).catch(fail);
    });
    document.querySelectorAll('#plan-tools [data-propose]').forEach(function (b) {
      b.addEventListener('click', function () {
        var body = {method: b.dataset.propose};
        if (body.method === 'mclp') { body.zone_code = $('plan-zone').value; body.cars = parseInt($('plan-cars').value, 10); }
        else { body.kind = state.plan && state.plan.kind === 'traffic' ? 'traffic' : 'station'; }
        msg(t('pl.working'));
        api('POST', '/api/v1/plans/proposals', body).then(function (p) {
          msg(t('pl.made') + p.name); return loadPlans(p.id);
        }).catch(fail);
      });
    });
    $('plan-move-grid').addEventListener('submit', function (e) {
      e.preventDefault();
      var grid = $('plan-grid-code').value.trim(), to;
      try { to = target(); } catch (err) { fail(err); return; }
      // a code or a name: the API resolves either (a picked suggestion carries the code)
      var picked = state.gridSuggest[grid];
      msg(t('pl.working'));
      api('POST', '/api/v1/plans/' + state.plan.id + '/move-grid', {grid_id: picked || grid, to_organisation_id: to})
        .then(function () { msg(t('pl.saved')); return reload(); }).catch(fail);
    });
    var gridTimer = null;
    $('plan-grid-code').addEventListener('input', function () {
      var q = this.value.trim();
      clearTimeout(gridTimer);
      if (!q || state.gridSuggest[q]) { return; }
      gridTimer = setTimeout(function () {
        api('GET', '/api/v1/plans/grids?limit=15&q=' + encodeURIComponent(q)).then(function (r) {
          state.gridSuggest = {};
          $('plan-grid-list').innerHTML = r.grids.map(function (g) {
            var label = g.name + ' (' + g.code + ')';
            state.gridSuggest[label] = g.code;
            return '<option value="' + esc(label) + '">' + esc(EN && g.organisation_name_en ? g.organisation_name_en : g.organisation_name) + '</option>';
          }).join('');
        }).catch(function () { /* a half-typed query: no suggestions */ });
      }, 200);
    });
    $('plan-validate').addEventListener('click', function () { validate(); });
    $('plan-compare').addEventListener('click', function () { compare(); });
    $('plan-publish').addEventListener('submit', function (e) {
      e.preventDefault();
      var body = {reason: $('plan-reason').value};
      if ($('plan-effective').value) { body.effective_from = new Date($('plan-effective').value).toISOString(); }
      api('POST', '/api/v1/plans/' + state.plan.id + '/publish', body).then(function (r) {
        msg(t('pl.published') + window.gisapp.time(r.effective_from));
        return loadPlans(state.plan.id);
      }).catch(function (err) {
        fail(err);
        if (err.body && err.body.issues) { validate(); }
      });
    });
    var want = new URLSearchParams(window.location.search).get('plan');
    Promise.all([loadOrgs(), loadZones()]).then(function () { return loadPlans(want ? parseInt(want, 10) : null); }).catch(fail);
  }

  if (window.gisapp && gisapp.onReady) { gisapp.onReady(init); }
  else { document.addEventListener('gisapp:ready', function (e) { init(e.detail); }); }
  window.gisappPlan = {state: state, selectPlan: selectPlan, validate: validate, compare: compare};
}());
