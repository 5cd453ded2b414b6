/* The dispatcher's live panel on /map/dispatch: the queue with SLA timers, an incident's legs
 * with recommended units (ETA, route on the map), one-click dispatch / assign / lifecycle
 * buttons, intake, and live updates from the server-sent-event stream /api/v1/stream
 * (EventSource resumes with Last-Event-ID after a disconnect, so nothing is missed).
 *
 * Uses the page's Leaflet map through window.gisapp (web/static/js/gisapp-map.js):
 * gisapp.map, gisapp.layers.units, gisapp.layers.incidents, gisapp.marker(kind, feature, latlng).
 * No CDN, no framework. MIT-licensed as part of the project.
 */
(function () {
  'use strict';

  var panel = document.getElementById('dispatch-panel');
  if (!panel) { return; }
  var lang = panel.getAttribute('data-lang') === 'en' ? 'en' : 'zh';
  // Texts come from the server's catalogue (gisapp/core/i18n.py) through gisapp.t: the panel's own
  // keys are under 'dp.', unit statuses, channels and severities are the map's own keys.
  function t(k) { return window.gisapp.t(/^(unit|channel|severity)\./.test(k) ? k : 'dp.' + k); }
  function esc(s) { return window.gisapp.esc(s); }
  function $(sel, root) { return (root || panel).querySelector(sel); }

  var S = {
    G: null, catalogue: null, incidents: {}, units: {}, selected: null, skew: 0, lastId: null,
    es: null, picking: false, pickMarker: null, routeLayer: null, unitMarkers: {}, incidentMarkers: {},
    refetch: {}, recs: {}, plan: null, idemKey: null
  };

  // --- server calls ------------------------------------------------------------------------------
  function api(method, path, body) { return window.gisapp.api(method, path, body, {'X-Client': 'dispatch-page'}); }
  function errText(e) { return e && e.reason ? (e.field ? e.field + ': ' : '') + e.reason : String(e); }

  // --- time --------------------------------------------------------------------------------------
  function now() { return Date.now() + S.skew; }
  function mmss(ms) {
    var neg = ms < 0, s = Math.floor(Math.abs(ms) / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var txt = (h ? h + ':' + (m < 10 ? '0' : '') : '') + m + ':' + (r < 10 ? '0' : '') + r;
    return (neg ? '-' : '') + txt;
  }
  function timerHtml(due, done, state) {
    if (done || state === 'met' || state === 'late' || state === 'cancelled') {
      return '<span class="timer done">' + esc(t('clock.' + (state || 'met'))) + '</span>';
    }
    return '<span class="timer" data-due="' + esc(due) + '"></span>';
  }
  function tick() {
    var n = now();
    var clock = $('.dp-clock');
    if (clock) { clock.textContent = new Date(n).toLocaleTimeString(lang === 'en' ? 'en-GB' : 'zh-CN'); }
    var timers = panel.querySelectorAll('.timer[data-due]');
    for (var i = 0; i < timers.length; i++) {
      var left = Date.parse(timers[i].getAttribute('data-due')) - n;
      timers[i].textContent = mmss(left);
      timers[i].classList.toggle('overdue', left < 0);
      var item = timers[i].closest('.dp-item');
      if (item && left < 0) { item.classList.add('overdue'); }
    }
  }

  // --- incidents: queue --------------------------------------------------------------------------
  function typeName(code) {
    var ty = S.catalogue && S.catalogue.types.filter(function (x) { return x.code === code; })[0];
    return ty ? ty[lang] : code;
  }
  function nextDue(inc) {
    var best = null;
    (inc.legs || []).forEach(function (leg) {
      var cl = leg.sla && leg.sla.clocks;
      if (!cl) { return; }
      ['sign_off', 'first_feedback', 'close'].forEach(function (k) {
        var c = cl[k];
        if (c && c.state !== 'met' && c.state !== 'late' && c.state !== 'cancelled' && !c.done_at) {
          if (best === null || Date.parse(c.due_at) < Date.parse(best)) { best = c.due_at; }
        }
      });
    });
    return best;
  }
  function renderQueue() {
    var list = Object.keys(S.incidents).map(function (k) { return S.incidents[k]; })
      .filter(function (i) { return i.status === 'open' || i.status === 'dispatched'; });
    list.sort(function (a, b) {
      var da = a.legs && a.legs.length ? Date.parse(nextDue(a) || '2999-01-01') : -Infinity;
      var db = b.legs && b.legs.length ? Date.parse(nextDue(b) || '2999-01-01') : -Infinity;
      return da - db || (a.id - b.id);
    });
    $('.dp-count').textContent = list.length ? '(' + list.length + ')' : '';
    var q = $('#dp-queue');
    if (!list.length) { q.innerHTML = '<div class="empty-note">' + esc(t('queue.empty')) + '</div>'; return; }
    q.innerHTML = list.map(function (i) {
      var due = nextDue(i);
      var flags = (i.overdue && i.overdue.length ? '<span class="dp-tag flag">!</span> ' : '') +
        (i.duplicate_candidates && i.duplicate_candidates.length ? '<span class="dp-tag flag">≈</span> ' : '');
      return '<div class="dp-item ch-' + esc(i.channel) + (S.selected === i.id ? ' sel' : '') + '" data-id="' + i.id +
        '" data-testid="queue-item"><div class="l1"><span class="code">' + esc(i.code) + '</span>' +
        (due ? timerHtml(due) : '<span class="dp-tag open">' + esc(t('status.open')) + '</span>') + '</div>' +
        '<div class="l2"><span>' + flags + esc(i.channel) + ' · ' + esc(typeName(i.type)) + ' · ' + esc(t('severity.' + i.severity)) +
        '</span><span>' + esc(t('status.' + i.status)) + '</span></div></div>';
    }).join('');
    tick();
  }

  // --- incidents: detail -------------------------------------------------------------------------
  function nextSteps(leg) {
    var tr = S.catalogue ? S.catalogue.lifecycle.transitions[leg.status] || [] : [];
    return tr;
  }
  function clocksHtml(leg) {
    var cl = (leg.sla && leg.sla.clocks) || {};
    return '<div class="dp-clocks">' + ['sign_off', 'first_feedback', 'close'].map(function (k) {
      var c = cl[k] || {};
      return '<div>' + esc(t('clock.' + k)) + '<br>' + timerHtml(c.due_at, c.done_at, c.state) + '</div>';
    }).join('') + '</div>';
  }
  function recsHtml(rec, legId) {
    if (!rec) { return ''; }
    if (!rec.units || !rec.units.length) {
      return '<div class="dp-recs empty-note">' + esc(rec.reason || t('detail.no_unit')) + '</div>';
    }
    return '<div class="dp-recs"><div class="hint">' + esc(t('detail.recs')) +
      (rec.method === 'straight_line' ? ' · ' + esc(t('detail.straight')) : '') + '</div>' +
      rec.units.map(function (u, i) {
        return '<div class="dp-rec" data-route="' + (legId || 'plan') + ':' + i + '"><span>' + esc(u.code) + ' ' + esc(u.name || '') +
          '</span><span class="eta">' + (u.eta_s / 60).toFixed(1) + ' ' + esc(t('min')) + '</span><span>' +
          (u.distance_m / 1000).toFixed(1) + ' ' + esc(t('km')) + '</span>' +
          (legId ? '<button class="dp-btn dp-btn-light" data-action="assign" data-leg="' + legId + '" data-unit="' + u.unit_id +
            '" data-testid="assign">' + esc(t('detail.assign')) + '</button>' : '') + '</div>';
      }).join('') + '</div>';
  }
  function renderDetail() {
    var box = $('#dp-detail');
    var inc = S.selected !== null ? S.incidents[S.selected] : null;
    if (!inc) { box.hidden = true; box.innerHTML = ''; clearRoute(); return; }
    box.hidden = false;
    var h = '<h3>' + esc(inc.code) + ' · ' + esc(typeName(inc.type)) + ' <span class="dp-tag">' + esc(t('status.' + inc.status)) +
      '</span></h3><div class="meta">' + esc(inc.channel) + ' · ' + esc(t('severity.' + inc.severity)) + ' · ' +
      esc(t('detail.reported')) + ' ' + esc(String(inc.reported_at || '').replace('T', ' ').slice(0, 19)) +
      (inc.address ? '<br>' + esc(inc.address) : '') + (inc.outside_county ? ' · <b>' + esc(t('detail.outside')) + '</b>' : '') +
      (inc.description ? '<br>' + esc(inc.description) : '') + '</div>';
    if (inc.duplicate_candidates && inc.duplicate_candidates.length && inc.status !== 'merged') {
      var into = inc.duplicate_candidates[0];
      h += '<div class="meta">' + esc(t('detail.duplicate')) + ' #' + into + ' <button class="dp-btn dp-btn-warn" data-action="merge" ' +
        'data-into="' + into + '">' + esc(t('detail.merge')) + '</button></div>';
    }
    if (inc.status === 'open') {
      h += '<div class="dp-actions"><button class="dp-btn" data-action="dispatch" data-testid="dispatch-btn">' +
        esc(t('detail.dispatch')) + '</button></div>';
      if (S.plan && S.plan.incident === inc.id) {
        h += '<div class="hint">' + esc(t('detail.plan')) + ': ' + esc(S.plan.data.rule) + '</div>';
        S.plan.data.legs.forEach(function (leg) {
          h += '<div class="dp-leg"><div class="hd"><span>' + esc(t('role.' + leg.role)) + ' · ' + esc(leg.organisation_name || '—') +
            '</span>' + (leg.fallback_from_org_id ? '<span class="dp-tag flag">' + esc(t('detail.fallback')) + '</span>' : '') + '</div>' +
            recsHtml(leg.recommendation, null) + '</div>';
        });
      }
    }
    (inc.legs || []).forEach(function (leg) {
      h += '<div class="dp-leg" data-leg="' + leg.id + '"><div class="hd"><span>' + esc(t('role.' + leg.role)) + ' · ' +
        esc(leg.organisation_name) + '</span><span class="dp-tag">' + esc(t('leg.' + leg.status)) + '</span></div>' +
        (leg.fallback_from_org_id ? '<div class="hint">' + esc(t('detail.fallback')) + '</div>' : '') +
        '<div>' + esc(t('detail.unit')) + ': ' + esc(leg.unit_code || '—') + '</div>' + clocksHtml(leg) +
        '<div class="dp-actions">' + nextSteps(leg).map(function (to) {
          return '<button class="dp-btn' + (to === 'cancelled' ? ' dp-btn-warn' : '') + '" data-action="go" data-leg="' + leg.id +
            '" data-to="' + to + '" data-testid="go-' + to + '">' + esc(t('go.' + to)) + '</button>';
        }).join('') + '</div>' +
        (!leg.unit_id && (leg.status === 'dispatched' || leg.status === 'signed_off') ? recsHtml(S.recs[leg.id], leg.id) : '') +
        '</div>';
    });
    box.innerHTML = h;
    tick();
    drawFirstRoute();
  }
  function routeOf(key) {
    var parts = key.split(':'), i = Number(parts[1]), rec = null;
    if (parts[0] === 'plan') {
      var legs = S.plan ? S.plan.data.legs : [];
      for (var j = 0; j < legs.length && !rec; j++) { if (legs[j].recommendation && legs[j].recommendation.units[i]) { rec = legs[j].recommendation; } }
    } else { rec = S.recs[Number(parts[0])]; }
    return rec && rec.units[i] ? rec.units[i].route : null;
  }
  function clearRoute() { if (S.routeLayer) { S.routeLayer.clearLayers(); } }
  function drawRoute(geom) {
    if (!S.G || !geom) { return; }
    if (!S.routeLayer) { S.routeLayer = L.layerGroup().addTo(S.G.map); }
    S.routeLayer.clearLayers();
    L.geoJSON(geom, {style: {color: '#dc2626', weight: 5, opacity: 0.85, dashArray: '8 6'}}).addTo(S.routeLayer);
  }
  function drawFirstRoute() {
    var first = $('#dp-detail .dp-rec');
    if (first) { drawRoute(routeOf(first.getAttribute('data-route'))); } else { clearRoute(); }
  }

  function select(id) {
    S.selected = id;
    var inc = S.incidents[id];
    renderQueue();
    renderDetail();
    if (!inc) { return; }
    if (S.G && inc.lat !== undefined) { S.G.map.panTo([inc.lat, inc.lon]); }
    if (inc.status === 'open') {
      api('GET', '/api/v1/dispatch/incidents/' + id + '/plan').then(function (p) {
        S.plan = {incident: id, data: p};
        if (S.selected === id) { renderDetail(); }
      }).catch(function () {});
    }
    (inc.legs || []).forEach(function (leg) {
      if (!leg.unit_id && (leg.status === 'dispatched' || leg.status === 'signed_off')) {
        api('GET', '/api/v1/dispatch/legs/' + leg.id + '/recommendations').then(function (r) {
          S.recs[leg.id] = r;
          if (S.selected === id) { renderDetail(); }
        }).catch(function () {});
      }
    });
  }

  function upsertIncident(inc) {
    var old = S.incidents[inc.id] || {};
    var merged = {};
    [old, inc].forEach(function (o) { for (var k in o) { if (Object.prototype.hasOwnProperty.call(o, k)) { merged[k] = o[k]; } } });
    S.incidents[inc.id] = merged;
    syncIncidentMarker(merged);
  }
  function refetchIncident(id) {
    if (S.refetch[id]) { return; }
    S.refetch[id] = setTimeout(function () {
      delete S.refetch[id];
      api('GET', '/api/v1/dispatch/incidents/' + id).then(function (inc) {
        delete inc.events;
        upsertIncident(inc);
        renderQueue();
        if (S.selected === id) { delete S.recs[id]; select(id); }
      }).catch(function () {});
    }, 150);
  }

  // --- map markers -------------------------------------------------------------------------------
  function indexMarkers() {
    var G = S.G;
    if (G.layers.units && G.layers.units.eachLayer) {
      G.layers.units.eachLayer(function (m) { if (m.feature) { S.unitMarkers[m.feature.properties.id] = m; } });
    }
    if (G.layers.incidents && G.layers.incidents.eachLayer) {
      G.layers.incidents.eachLayer(function (m) { if (m.feature) { S.incidentMarkers[m.feature.properties.id] = m; } });
    }
  }
  function syncIncidentMarker(inc) {
    var G = S.G;
    if (!G || !G.layers.incidents || inc.lat === undefined) { return; }
    var m = S.incidentMarkers[inc.id];
    var active = inc.status === 'open' || inc.status === 'dispatched';
    if (m && !active) { G.layers.incidents.removeLayer(m); delete S.incidentMarkers[inc.id]; return; }
    if (!m && active) {
      var f = {type: 'Feature', properties: {id: inc.id, code: inc.code, channel: inc.channel, type: inc.type,
        severity: inc.severity, status: inc.status, address: inc.address, reported_at: inc.reported_at}};
      m = G.marker('incident', f, [inc.lat, inc.lon]);
      m.feature = f;
      G.bindFeature(m, f, 'incident');
      m.on('click', function () { select(inc.id); });
      G.layers.incidents.addLayer(m);
      S.incidentMarkers[inc.id] = m;
    }
  }
  function syncUnit(u) {
    if (!u || u.id === undefined) { return; }
    var old = S.units[u.id] || {};
    for (var k in u) { if (Object.prototype.hasOwnProperty.call(u, k)) { old[k] = u[k]; } }
    S.units[u.id] = old;
    var G = S.G;
    if (!G || !G.layers.units || old.lon === null || old.lon === undefined) { return; }
    var m = S.unitMarkers[u.id];
    var f = {type: 'Feature', properties: {id: old.id, code: old.code, name: old.name, kind: old.kind, status: old.status,
      organisation_id: old.organisation_id, org_label: old.organisation_name, last_position_at: old.last_position_at}};
    if (!m) {
      m = G.marker('unit', f, [old.lat, old.lon]);
      m.feature = f;
      G.bindFeature(m, f, 'unit');
      G.layers.units.addLayer(m);
      S.unitMarkers[u.id] = m;
      return;
    }
    m.setLatLng([old.lat, old.lon]);
    if (m.feature && m.feature.properties.status !== old.status && m.setIcon) {
      m.setIcon(G.marker('unit', f, [old.lat, old.lon]).options.icon);
    }
    if (m.feature) { m.feature.properties.status = old.status; }
  }
  function renderUnits() {
    var counts = {};
    Object.keys(S.units).forEach(function (k) { var s = S.units[k].status; counts[s] = (counts[s] || 0) + 1; });
    $('#dp-units').innerHTML = ['available', 'assigned', 'en_route', 'on_scene', 'off_duty', 'out_of_service'].map(function (s) {
      return '<div class="kpi"><div class="v" data-testid="units-' + s + '">' + (counts[s] || 0) + '</div><div class="l">' +
        esc(t('unit.' + s)) + '</div></div>';
    }).join('');
  }

  // --- the stream --------------------------------------------------------------------------------
  function setConn(state) {
    var el = $('.dp-conn');
    el.setAttribute('data-state', state);
    el.textContent = t('conn.' + state);
  }
  function handle(msg) {
    var d = msg.data || {};
    var type = msg.type || '';
    if (type === 'stream.reset') { loadBoard(); return; }
    if (d.incident) { upsertIncident(d.incident); }
    if (d.unit) { syncUnit(d.unit); }
    (d.units || []).forEach(syncUnit);
    if (type.indexOf('incident.') === 0 || type.indexOf('leg.') === 0) {
      var id = d.incident ? d.incident.id : (d.leg ? d.leg.incident_id : null);
      if (id !== null && type !== 'incident.created') { refetchIncident(id); }
    }
    if (type === 'sla.overdue' && d.incident_id) { refetchIncident(d.incident_id); }
    renderQueue();
    if (d.unit || d.units) { renderUnits(); }
  }
  function startStream() {
    if (S.es) { return; }
    var url = '/api/v1/stream' + (S.lastId !== null ? '?last_event_id=' + S.lastId : '');
    var es = S.es = new EventSource(url);
    es.onopen = function () { setConn('live'); };
    es.onerror = function () { setConn(es.readyState === EventSource.CLOSED ? 'connecting' : 'reconnecting'); };
    es.onmessage = function (e) {
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      if (e.lastEventId) { S.lastId = Number(e.lastEventId); }
      handle(msg);
    };
  }
  // Open the stream once the page's own loading is over (an open stream is a request that never ends).
  function whenQuiet(fn) {
    var last = Date.now(), started = Date.now(), done = false;
    var obs = window.PerformanceObserver ? new PerformanceObserver(function () { last = Date.now(); }) : null;
    if (obs) { try { obs.observe({entryTypes: ['resource']}); } catch (e) { obs = null; } }
    (function check() {
      if (done) { return; }
      if ((document.readyState === 'complete' && Date.now() - last > 1200) || Date.now() - started > 15000) {
        done = true;
        if (obs) { obs.disconnect(); }
        fn();
      } else { setTimeout(check, 200); }
    })();
  }

  function loadBoard() {
    return Promise.all([api('GET', '/api/v1/dispatch/board'), api('GET', '/api/v1/dispatch/units')]).then(function (r) {
      var board = r[0], units = r[1];
      S.skew = Date.parse(board.now) - Date.now();
      if (S.lastId === null || board.last_event_id > S.lastId) { S.lastId = board.last_event_id; }
      S.incidents = {};
      board.incidents.forEach(upsertIncident);
      units.units.forEach(syncUnit);
      renderQueue();
      renderUnits();
      renderDetail();
    });
  }

  // --- intake ------------------------------------------------------------------------------------
  function fillTypes() {
    var form = $('#dp-intake-form');
    var ch = form.channel.value;
    form.type.innerHTML = S.catalogue.types.filter(function (x) { return x.channels.indexOf(ch) >= 0; }).map(function (x) {
      return '<option value="' + esc(x.code) + '">' + esc(x[lang]) + '</option>';
    }).join('');
    fillSeverities();
  }
  function fillSeverities() {
    var form = $('#dp-intake-form');
    var ty = S.catalogue.types.filter(function (x) { return x.code === form.type.value; })[0];
    form.severity.innerHTML = (ty ? ty.severities : ['none']).map(function (s) {
      return '<option value="' + s + '">' + esc(t('severity.' + s)) + '</option>';
    }).join('');
  }
  function submitIntake(ev) {
    ev.preventDefault();
    var form = ev.target, msg = $('.dp-msg', form);
    var body = {channel: form.channel.value, type: form.type.value, severity: form.severity.value};
    if (S.pickMarker) { var ll = S.pickMarker.getLatLng(); body.location = {type: 'Point', coordinates: [ll.lng, ll.lat]}; }
    ['address', 'caller_number', 'description'].forEach(function (k) { if (form[k].value.trim()) { body[k] = form[k].value.trim(); } });
    if (!body.location && !body.address) { msg.className = 'dp-msg'; msg.textContent = t('intake.need_location'); return; }
    if (form.dispatch.checked) { body.dispatch = true; body.auto_assign = true; }
    // one key per call taken: a retried submit returns the same incident instead of a second one
    S.idemKey = S.idemKey || ('page-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 10));
    body.idempotency_key = S.idemKey;
    form.querySelector('[type=submit]').disabled = true;
    api('POST', '/api/v1/dispatch/incidents', body).then(function (inc) {
      S.idemKey = null;
      msg.className = 'dp-msg ok';
      msg.textContent = t('intake.done') + ' ' + inc.code;
      form.address.value = form.caller_number.value = form.description.value = '';
      if (S.pickMarker) { S.pickMarker.remove(); S.pickMarker = null; $('.dp-picked').textContent = ''; }
      delete inc.events;
      upsertIncident(inc);
      select(inc.id);
    }).catch(function (e) {
      msg.className = 'dp-msg';
      msg.textContent = errText(e);
    }).then(function () { form.querySelector('[type=submit]').disabled = false; });
  }

  // --- clicks ------------------------------------------------------------------------------------
  function onClick(ev) {
    var el = ev.target.closest('[data-action], .dp-item, .dp-rec');
    if (!el || !panel.contains(el)) { return; }
    var action = el.getAttribute('data-action');
    var id = S.selected;
    if (!action && el.classList.contains('dp-item')) { select(Number(el.getAttribute('data-id'))); return; }
    if (!action && el.classList.contains('dp-rec')) { drawRoute(routeOf(el.getAttribute('data-route'))); return; }
    var run = null;
    if (action === 'pick') {
      S.picking = true;
      $('.dp-picked').textContent = t('intake.picking');
      return;
    }
    if (action === 'dispatch') { run = api('POST', '/api/v1/dispatch/incidents/' + id + '/dispatch', {auto_assign: true}); }
    if (action === 'go') { run = api('POST', '/api/v1/dispatch/legs/' + el.getAttribute('data-leg') + '/transition', {to: el.getAttribute('data-to')}); }
    if (action === 'assign') {
      run = api('POST', '/api/v1/dispatch/legs/' + el.getAttribute('data-leg') + '/assign', {unit_id: Number(el.getAttribute('data-unit'))});
    }
    if (action === 'merge') { run = api('POST', '/api/v1/dispatch/incidents/' + id + '/merge', {into: Number(el.getAttribute('data-into'))}); }
    if (!run) { return; }
    el.disabled = true;
    run.then(function (inc) {
      delete inc.events;
      upsertIncident(inc);
      S.recs = {};
      if (inc.status === 'merged' || inc.status === 'closed') { S.selected = null; }
      renderQueue();
      if (S.selected !== null) { select(S.selected); } else { renderDetail(); }
    }).catch(function (e) {
      el.disabled = false;
      el.title = errText(e);
      refetchIncident(id);
    });
  }

  function init(G) {
    S.G = G;
    indexMarkers();
    panel.addEventListener('click', onClick);
    G.map.on('click', function (e) {
      if (!S.picking) { return; }
      S.picking = false;
      if (S.pickMarker) { S.pickMarker.setLatLng(e.latlng); } else { S.pickMarker = L.marker(e.latlng).addTo(G.map); }
      $('.dp-picked').textContent = e.latlng.lng.toFixed(5) + ', ' + e.latlng.lat.toFixed(5);
    });
    var form = $('#dp-intake-form');
    form.addEventListener('submit', submitIntake);
    api('GET', '/api/v1/dispatch/catalogue').then(function (cat) {
      S.catalogue = cat;
      form.channel.addEventListener('change', fillTypes);
      form.type.addEventListener('change', fillSeverities);
      fillTypes();
      return loadBoard();
    }).then(function () {
      whenQuiet(startStream);
    }).catch(function (e) { $('#dp-queue').textContent = errText(e); });
    setInterval(tick, 1000);
  }

  if (window.gisapp && window.gisapp.onReady) { window.gisapp.onReady(init); }
  else { document.addEventListener('gisapp:ready', function (e) { init(e.detail); }); }
})();
